"""Mutual TLS for every logmesh gRPC server and channel, and the standard channel/server options.

Identity is the certificate's common name (DESIGN §5). Servers always require a client
certificate signed by the CA; there is no insecure mode here. This module reads certificate
files made by `logmesh certs init` (logmesh.certs) and may not create or modify them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import grpc

from logmesh.certs import load_identity

MESSAGE_BYTES_MAX = 64 * 1024 * 1024
# Clients ping an idle connection every 10 s and give up after 5 s without an answer, so a
# paused or partitioned peer is noticed in ~15 s instead of the kernel's TCP timeout (minutes).
KEEPALIVE_TIME_MS = 10_000
KEEPALIVE_TIMEOUT_MS = 5_000
# Short reconnect backoff: a restarted storage node must be reachable again within a second,
# not after grpc's default of up to 120 s.
RECONNECT_BACKOFF_INITIAL_MS = 100
RECONNECT_BACKOFF_MAX_MS = 1_000
# How long one connection attempt (TCP, the TLS handshake, HTTP/2 settings) may take. grpc
# core reads it from grpc.min_reconnect_backoff_ms (default 20 s), not from the backoff: at
# 100 ms, over a link with 150 ms of latency, every call's first attempt failed (UNAVAILABLE
# unless it waited for ready), and a busy host missed it now and then ("Handshake read
# failed (Endpoint closing)"). Calls still fail by their deadlines.
CONNECT_TIMEOUT_MS = 2_000

_CN_PROPERTY = "x509_common_name"

OptionList = list[tuple[str, int | str]]


class _HasAuthContext(Protocol):
    # object, not Iterable[bytes]: the grpc stubs type the sync context's values as bytes
    # although grpc returns a list of bytes; both must be accepted.
    def auth_context(self) -> Mapping[str, object]: ...


def server_credentials(cert_dir: Path | str, name: str) -> grpc.ServerCredentials:
    """Server credentials for instance `name`, requiring a CA-signed client certificate."""
    ca_pem, key_pem, cert_pem = load_identity(Path(cert_dir), name)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


def channel_credentials(cert_dir: Path | str, name: str) -> grpc.ChannelCredentials:
    """Channel credentials presenting certificate `name` and trusting only the cluster CA."""
    ca_pem, key_pem, cert_pem = load_identity(Path(cert_dir), name)
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def peer_identity(context: _HasAuthContext) -> str | None:
    """The caller's certificate CN, or None when the call is not authenticated by TLS.

    Reads the CN explicitly: grpc's `peer_identities()` returns the SANs when a certificate has
    them (our instance certificates all do), and those are host names, not identities.
    Works with both grpc.ServicerContext and grpc.aio.ServicerContext.
    """
    values = context.auth_context().get(_CN_PROPERTY)
    if isinstance(values, bytes):
        values = [values]
    if not isinstance(values, list | tuple) or len(values) != 1 or not isinstance(values[0], bytes):
        return None
    return values[0].decode("utf-8", errors="replace") or None


def channel_options(
    *, message_bytes_max: int = MESSAGE_BYTES_MAX, authority: str | None = None
) -> OptionList:
    """Options for every logmesh channel; `authority` overrides the TLS name checked."""
    options: OptionList = [
        ("grpc.max_send_message_length", message_bytes_max),
        ("grpc.max_receive_message_length", message_bytes_max),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_INITIAL_MS),
        ("grpc.min_reconnect_backoff_ms", CONNECT_TIMEOUT_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
        # Retries are the client library's decision (only when a write was surely not
        # proposed), never grpc's.
        ("grpc.enable_retries", 0),
    ]
    if authority is not None:
        options.append(("grpc.ssl_target_name_override", authority))
    return options


def server_options(*, message_bytes_max: int = MESSAGE_BYTES_MAX) -> OptionList:
    """Options for every logmesh server."""
    return [
        ("grpc.max_send_message_length", message_bytes_max),
        ("grpc.max_receive_message_length", message_bytes_max),
        # Two processes must never share a port silently: a second server on the same port is
        # a configuration error and must fail to bind.
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept our clients' pings (default minimum is 5 minutes, which would make the server
        # answer our 10 s keepalive with GOAWAY "too_many_pings").
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        ("grpc.http2.max_ping_strikes", 0),
    ]
