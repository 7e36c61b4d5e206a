"""logmesh.tls: mutual TLS against a real grpc server on 127.0.0.1, port 0."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from logmesh.tls import (
    channel_credentials,
    channel_options,
    peer_identity,
    server_credentials,
    server_options,
)

DEADLINE_S = 5.0
WHOAMI = "/logmesh.test.Identity/Whoami"


async def _whoami(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return (peer_identity(context) or "<none>").encode()


@asynccontextmanager
async def _aio_server(cert_dir: Path, name: str = "storage-0") -> AsyncIterator[str]:
    server = grpc.aio.server(options=server_options())
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "logmesh.test.Identity", {"Whoami": grpc.unary_unary_rpc_method_handler(_whoami)}
            )
        ]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert_dir, name))
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def _health_check(target: str, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    async with grpc.aio.secure_channel(target, credentials, options=channel_options()) as channel:
        check: grpc.aio.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = await check(health_pb2.HealthCheckRequest(), timeout=DEADLINE_S)
        except grpc.aio.AioRpcError as e:
            return e.code()
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        return grpc.StatusCode.OK


def _run_health_check(server_dir: Path, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    async def run() -> grpc.StatusCode:
        async with _aio_server(server_dir) as target:
            return await _health_check(target, credentials)

    return asyncio.run(run())


def test_client_with_ca_signed_certificate_is_accepted(cert_dir: Path) -> None:
    code = _run_health_check(cert_dir, channel_credentials(cert_dir, "root"))
    assert code == grpc.StatusCode.OK


def test_client_without_certificate_is_refused(cert_dir: Path) -> None:
    no_cert = grpc.ssl_channel_credentials(root_certificates=(cert_dir / "ca.pem").read_bytes())
    assert _run_health_check(cert_dir, no_cert) == grpc.StatusCode.UNAVAILABLE


def test_client_certificate_from_another_ca_is_refused(
    cert_dir: Path, other_cert_dir: Path
) -> None:
    foreign = grpc.ssl_channel_credentials(
        root_certificates=(cert_dir / "ca.pem").read_bytes(),  # trusts the server...
        private_key=(other_cert_dir / "root.key").read_bytes(),  # ...but is not trusted by it
        certificate_chain=(other_cert_dir / "root.pem").read_bytes(),
    )
    assert _run_health_check(cert_dir, foreign) == grpc.StatusCode.UNAVAILABLE


def test_server_certificate_from_another_ca_is_refused_by_client(
    cert_dir: Path, other_cert_dir: Path
) -> None:
    code = _run_health_check(other_cert_dir, channel_credentials(cert_dir, "root"))
    assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("client", ["root", "alice", "storage-2"])
def test_aio_peer_identity_is_the_client_certificate_cn(cert_dir: Path, client: str) -> None:
    async def run() -> bytes:
        async with (
            _aio_server(cert_dir) as target,
            grpc.aio.secure_channel(
                target, channel_credentials(cert_dir, client), options=channel_options()
            ) as channel,
        ):
            whoami: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHOAMI)
            return await whoami(b"", timeout=DEADLINE_S)

    assert asyncio.run(run()) == client.encode()


@contextmanager
def _sync_server(cert_dir: Path) -> Iterator[str]:
    def whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
        return (peer_identity(context) or "<none>").encode()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=server_options())
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "logmesh.test.Identity", {"Whoami": grpc.unary_unary_rpc_method_handler(whoami)}
            )
        ]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert_dir, "storage-0"))
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait(DEADLINE_S)


def test_sync_peer_identity_is_the_client_certificate_cn(cert_dir: Path) -> None:
    credentials = channel_credentials(cert_dir, "operator")
    with (
        _sync_server(cert_dir) as target,
        grpc.secure_channel(target, credentials, options=channel_options()) as channel,
    ):
        whoami: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHOAMI)
        assert whoami(b"", timeout=DEADLINE_S) == b"operator"


def test_localhost_name_and_authority_override_are_accepted(cert_dir: Path) -> None:
    async def run() -> bytes:
        async with _aio_server(cert_dir, "gateway-0") as target:
            port = target.rsplit(":", 1)[1]
            credentials = channel_credentials(cert_dir, "root")
            options = channel_options(authority="gateway-0")
            async with grpc.aio.secure_channel(f"localhost:{port}", credentials, options) as ch:
                whoami: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(WHOAMI)
                return await whoami(b"", timeout=DEADLINE_S)

    assert asyncio.run(run()) == b"root"


def test_server_options_refuse_a_second_server_on_the_same_port(cert_dir: Path) -> None:
    async def run() -> None:
        async with _aio_server(cert_dir) as target:
            second = grpc.aio.server(options=server_options())
            with pytest.raises(RuntimeError):
                second.add_secure_port(target, server_credentials(cert_dir, "storage-1"))

    asyncio.run(run())


class _FakeContext:
    def __init__(self, auth: dict[str, object]) -> None:
        self.auth = auth

    def auth_context(self) -> dict[str, object]:
        return self.auth


def test_peer_identity_is_none_without_exactly_one_common_name() -> None:
    assert peer_identity(_FakeContext({})) is None
    assert peer_identity(_FakeContext({"x509_common_name": [b"a", b"b"]})) is None
    assert peer_identity(_FakeContext({"x509_common_name": [b""]})) is None
    assert peer_identity(_FakeContext({"x509_common_name": [b"root"]})) == "root"


def test_peer_identity_is_none_on_a_plaintext_connection() -> None:
    async def run() -> bytes:
        server = grpc.aio.server(options=server_options())
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "logmesh.test.Identity",
                    {"Whoami": grpc.unary_unary_rpc_method_handler(_whoami)},
                )
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                whoami: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHOAMI)
                return await whoami(b"", timeout=DEADLINE_S)
        finally:
            await server.stop(grace=None)

    assert asyncio.run(run()) == b"<none>"
