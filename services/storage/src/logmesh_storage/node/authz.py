"""Who may call what on a storage node, by client certificate CN (DESIGN §5).

For now (ACLs come with the authz service): `Log` takes any certificate signed by the cluster
CA, `Raft` only storage identities (CN `storage-*`), `Admin` storage identities and operators
(`root`, `operator`). TLS itself already refused callers without a CA-signed certificate; these
checks decide between certified identities. It may not look at anything but the identity.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from logmesh import tls
from logmesh.errors import PermissionDeniedError, UnauthenticatedError, abort

STORAGE_PREFIX = "storage-"
OPERATORS = frozenset({"root", "operator"})


def is_storage(identity: str) -> bool:
    return identity.startswith(STORAGE_PREFIX)


async def require_any_client(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    identity = tls.peer_identity(context)
    if identity is None:
        await abort(context, UnauthenticatedError())
    return identity


async def require_storage(context: grpc.aio.ServicerContext[Any, Any], api: str) -> str:
    identity = await require_any_client(context)
    if not is_storage(identity):
        await abort(
            context,
            PermissionDeniedError(
                identity,
                api,
                "call",
                f"{identity} may not call the {api} API: only storage nodes (certificates "
                f"storage-*) may",
            ),
        )
    return identity


async def require_admin(context: grpc.aio.ServicerContext[Any, Any], api: str) -> str:
    identity = await require_any_client(context)
    if not (is_storage(identity) or identity in OPERATORS):
        await abort(
            context,
            PermissionDeniedError(
                identity,
                api,
                "call",
                f"{identity} may not call the {api} API: use an operator certificate "
                f"({', '.join(sorted(OPERATORS))}) or a storage node's",
            ),
        )
    return identity
