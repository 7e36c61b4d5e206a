"""logmesh.errors: the error model and its round trip through real grpc servers (aio and sync)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from logmesh.errors import (
    ERROR_DOMAIN,
    WIRE_ERRORS,
    CallCancelledError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    LogmeshError,
    NoLeaderError,
    NotLeaderError,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    abort,
    abort_sync,
    from_rpc_error,
    rpc_errors,
    to_rich_status,
)
from logmesh.testing import free_port
from logmesh.tls import channel_credentials, channel_options, server_credentials, server_options

DEADLINE_S = 5.0
FAIL = "/logmesh.test.Errors/Fail"

EXAMPLES: list[LogmeshError] = [
    OffsetOutOfRangeError(42, next_offset=40),
    OffsetTruncatedError(3, first_offset=100),
    NotLeaderError("storage-1", "storage-1:8411"),
    NotLeaderError(None, None),
    NoLeaderError(),
    InvalidArgumentError("record is 2000000 bytes; the limit is 1048576", field="record.value"),
    PermissionDeniedError("nobody", "log", "produce"),
    UnauthenticatedError(),
    UnavailableError("shutting down: retry on another node"),
]


def _fields(err: LogmeshError) -> tuple[type, str, dict[str, str], bool, bool]:
    return type(err), err.message, err.metadata(), err.retriable, err.invalid_metadata


AioContext = grpc.aio.ServicerContext[bytes, bytes]
AioHandler = Callable[[bytes, AioContext], Awaitable[bytes]]


def _serve_aio(handler: AioHandler) -> grpc.aio.Server:
    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "logmesh.test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(handler)}
            )
        ]
    )
    return server


async def _call_aio(
    cert_dir: Path,
    handler: AioHandler,
    timeout_s: float = DEADLINE_S,
) -> grpc.aio.AioRpcError:
    server = _serve_aio(handler)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert_dir, "storage-0"))
    await server.start()
    try:
        credentials = channel_credentials(cert_dir, "root")
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}", credentials, options=channel_options()
        ) as channel:
            fail: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(FAIL)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await fail(b"", timeout=timeout_s)
            return info.value
    finally:
        await server.stop(grace=None)


def test_every_wire_error_has_a_unique_code_and_a_message_that_says_what_to_do() -> None:
    assert len(WIRE_ERRORS) == len({cls.code for cls in WIRE_ERRORS.values()})
    for cls in WIRE_ERRORS.values():
        assert ":" in cls.default_message or cls is CallCancelledError, cls


def test_rich_status_carries_error_info_with_domain_reason_and_metadata() -> None:
    status = to_rich_status(NotLeaderError("storage-1", "storage-1:8411"))
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.domain, info.reason) == (ERROR_DOMAIN, "NOT_LEADER")
    assert dict(info.metadata) == {"leader_id": "storage-1", "leader_addr": "storage-1:8411"}


def test_not_leader_without_a_known_leader_says_to_find_it() -> None:
    err = NotLeaderError(None, None)
    assert err.retriable and err.invalid_metadata
    assert "find the leader" in err.message


@pytest.mark.parametrize("err", EXAMPLES, ids=lambda e: e.code)
def test_errors_round_trip_through_an_aio_server(cert_dir: Path, err: LogmeshError) -> None:
    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await abort(context, err)

    rpc_error = asyncio.run(_call_aio(cert_dir, handler))
    assert rpc_error.code() == err.status_code
    assert _fields(from_rpc_error(rpc_error)) == _fields(err)


@pytest.mark.parametrize("err", EXAMPLES[:3], ids=lambda e: e.code)
def test_errors_round_trip_through_a_sync_server(cert_dir: Path, err: LogmeshError) -> None:
    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        abort_sync(context, err)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=server_options())
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "logmesh.test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(handler)}
            )
        ]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert_dir, "storage-0"))
    server.start()
    try:
        credentials = channel_credentials(cert_dir, "root")
        with (
            grpc.secure_channel(f"127.0.0.1:{port}", credentials, channel_options()) as channel,
            pytest.raises(grpc.RpcError) as info,
        ):
            fail: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(FAIL)
            fail(b"", timeout=DEADLINE_S)
    finally:
        server.stop(grace=None).wait(DEADLINE_S)
    assert _fields(from_rpc_error(info.value)) == _fields(err)


def test_deadline_on_a_write_is_outcome_unknown_and_on_a_read_is_retriable(cert_dir: Path) -> None:
    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await asyncio.Event().wait()  # never answers: the client's deadline must fire
        raise AssertionError("unreachable")

    rpc_error = asyncio.run(_call_aio(cert_dir, handler, timeout_s=0.2))
    assert rpc_error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    write_error = from_rpc_error(rpc_error, write=True)
    assert isinstance(write_error, OutcomeUnknownError)
    assert not write_error.retriable and "may or may not have been committed" in str(write_error)
    read_error = from_rpc_error(rpc_error)
    assert isinstance(read_error, DeadlineExceededError) and read_error.retriable


def test_connection_refused_on_a_write_is_unavailable_not_outcome_unknown(cert_dir: Path) -> None:
    credentials = channel_credentials(cert_dir, "root")
    target = f"127.0.0.1:{free_port()}"
    with (
        grpc.secure_channel(target, credentials, channel_options()) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        fail: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(FAIL)
        fail(b"", timeout=DEADLINE_S)
    err = from_rpc_error(info.value, write=True)
    assert isinstance(err, UnavailableError) and err.retriable and err.invalid_metadata


def test_unexpected_server_exception_maps_to_internal_without_traceback(cert_dir: Path) -> None:
    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        raise ValueError("boom")

    rpc_error = asyncio.run(_call_aio(cert_dir, handler))
    err = from_rpc_error(rpc_error)
    assert isinstance(err, InternalError) and not err.retriable
    assert "Traceback" not in err.message


def test_bare_permission_denied_keeps_the_servers_message(cert_dir: Path) -> None:
    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "denied by envoy")

    err = from_rpc_error(asyncio.run(_call_aio(cert_dir, handler)))
    assert isinstance(err, PermissionDeniedError)
    assert err.message.startswith("denied by envoy (PERMISSION_DENIED)")


class _Servicer:
    """Servicer methods decorated with rpc_errors, as services write them."""

    @rpc_errors
    async def not_leader(self, request: bytes, context: AioContext) -> bytes:
        raise NotLeaderError("storage-2", "127.0.0.1:8412")

    @rpc_errors
    async def crash(self, request: bytes, context: AioContext) -> bytes:
        raise ValueError("secret internal detail")

    @rpc_errors
    async def aborts_itself(self, request: bytes, context: AioContext) -> bytes:
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, "own status")

    @rpc_errors
    async def stream(self, request: bytes, context: AioContext) -> AsyncIterator[bytes]:
        yield b"first"
        raise OffsetTruncatedError(0, first_offset=10)


async def _call_stream(cert_dir: Path) -> tuple[list[bytes], grpc.aio.AioRpcError]:
    server = grpc.aio.server(options=server_options())
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(
        _Servicer().stream
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("logmesh.test.Errors", {"Stream": handler})]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(cert_dir, "storage-0"))
    await server.start()
    received: list[bytes] = []
    try:
        credentials = channel_credentials(cert_dir, "root")
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}", credentials, options=channel_options()
        ) as channel:
            call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                "/logmesh.test.Errors/Stream"
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for item in call(b"", timeout=DEADLINE_S):
                    received.append(item)
            return received, info.value
    finally:
        await server.stop(grace=None)


def test_rpc_errors_aborts_with_the_logmesh_error(cert_dir: Path) -> None:
    err = from_rpc_error(asyncio.run(_call_aio(cert_dir, _Servicer().not_leader)))
    assert isinstance(err, NotLeaderError) and err.leader_addr == "127.0.0.1:8412"


def test_rpc_errors_hides_unexpected_exceptions_from_the_client(
    cert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rpc_error = asyncio.run(_call_aio(cert_dir, _Servicer().crash))
    assert rpc_error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (rpc_error.details() or "")
    assert isinstance(from_rpc_error(rpc_error), InternalError)
    assert "secret internal detail" in caplog.text  # ...but the server's log has it


def test_rpc_errors_keeps_a_status_the_method_aborted_with(cert_dir: Path) -> None:
    rpc_error = asyncio.run(_call_aio(cert_dir, _Servicer().aborts_itself))
    assert (rpc_error.code(), rpc_error.details()) == (grpc.StatusCode.ALREADY_EXISTS, "own status")


def test_rpc_errors_ends_a_stream_with_the_error_after_earlier_items(cert_dir: Path) -> None:
    received, rpc_error = asyncio.run(_call_stream(cert_dir))
    assert received == [b"first"]
    err = from_rpc_error(rpc_error)
    assert isinstance(err, OffsetTruncatedError) and err.first_offset == 10
