"""The logmesh error model (DESIGN §2) and its gRPC mapping, plus the shared package's own errors.

Wire errors are `LogmeshError` subclasses: each has a code name (the `google.rpc.ErrorInfo`
reason, domain `logmesh`), a canonical gRPC status code, typed metadata, and, in the manner of
aiokafka, `retriable` (the same call may succeed if simply retried) and `invalid_metadata` (the
caller's view of the cluster is stale: refresh leader/endpoints first). Servers raise them and
`abort(context, err)`; clients turn a `grpc.RpcError` back into one with `from_rpc_error`.

This module may not retry or decide policy; it only names what happened (and logs, server-side,
the unexpected exceptions `rpc_errors` turns into InternalError). Messages say what happened and
what to do, and never carry a traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, NoReturn, ParamSpec, Self, TypeVar, overload

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

ERROR_DOMAIN = "logmesh"
_DETAILS_KEY = "grpc-status-details-bin"


class LogmeshError(Exception):
    """Base of every error that crosses the wire. Subclasses set the class attributes."""

    code: ClassVar[str] = "INTERNAL"
    status_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False
    default_message: ClassVar[str] = "internal error on the server: report it with the logs"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def metadata(self) -> dict[str, str]:
        """The ErrorInfo metadata this error carries (all values are strings on the wire)."""
        return {}

    @classmethod
    def from_metadata(cls, message: str, metadata: Mapping[str, str]) -> Self:
        """Rebuild the error a server sent; subclasses with fields override this."""
        return cls(message)


class InternalError(LogmeshError):
    """The server failed in a way it did not expect; nothing the caller did is wrong."""


class OffsetOutOfRangeError(LogmeshError):
    """The offset is past the end of the committed log."""

    code = "OFFSET_OUT_OF_RANGE"
    status_code = grpc.StatusCode.OUT_OF_RANGE

    def __init__(self, offset: int, next_offset: int | None = None, message: str | None = None):
        self.offset = offset
        self.next_offset = next_offset
        end = "" if next_offset is None else f" (next offset to be written: {next_offset})"
        super().__init__(
            message
            or f"offset {offset} is past the end of the log{end}: wait for it, or consume an "
            "earlier offset"
        )

    def metadata(self) -> dict[str, str]:
        md = {"offset": str(self.offset)}
        if self.next_offset is not None:
            md["next_offset"] = str(self.next_offset)
        return md

    @classmethod
    def from_metadata(cls, message: str, metadata: Mapping[str, str]) -> Self:
        return cls(_int(metadata, "offset", -1), _opt_int(metadata, "next_offset"), message)


class OffsetTruncatedError(LogmeshError):
    """The offset is below the first offset the log still retains."""

    code = "OFFSET_TRUNCATED"
    status_code = grpc.StatusCode.OUT_OF_RANGE

    def __init__(self, offset: int, first_offset: int, message: str | None = None):
        self.offset = offset
        self.first_offset = first_offset
        super().__init__(
            message
            or f"offset {offset} was removed by retention: the log starts at {first_offset}; "
            "consume from there"
        )

    def metadata(self) -> dict[str, str]:
        return {"offset": str(self.offset), "first_offset": str(self.first_offset)}

    @classmethod
    def from_metadata(cls, message: str, metadata: Mapping[str, str]) -> Self:
        return cls(_int(metadata, "offset", -1), _int(metadata, "first_offset", 0), message)


class NotLeaderError(LogmeshError):
    """A write reached a node that is not the leader; the leader, if known, is named."""

    code = "NOT_LEADER"
    status_code = grpc.StatusCode.FAILED_PRECONDITION
    retriable = True
    invalid_metadata = True

    def __init__(
        self, leader_id: str | None, leader_addr: str | None, message: str | None = None
    ) -> None:
        self.leader_id = leader_id
        self.leader_addr = leader_addr
        hint = f"retry on {leader_id} at {leader_addr}" if leader_addr else "find the leader"
        super().__init__(message or f"this node is not the leader: {hint}")

    def metadata(self) -> dict[str, str]:
        return {"leader_id": self.leader_id or "", "leader_addr": self.leader_addr or ""}

    @classmethod
    def from_metadata(cls, message: str, metadata: Mapping[str, str]) -> Self:
        return cls(metadata.get("leader_id") or None, metadata.get("leader_addr") or None, message)


class NoLeaderError(LogmeshError):
    """The cluster has no leader right now (election under way or no quorum)."""

    code = "NO_LEADER"
    status_code = grpc.StatusCode.UNAVAILABLE
    retriable = True
    invalid_metadata = True
    default_message = "the cluster has no leader right now: retry after a short backoff"


class InvalidArgumentError(LogmeshError):
    """The request is malformed or too large; retrying it unchanged fails again."""

    code = "INVALID_ARGUMENT"
    status_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "the request is invalid: fix it before retrying"

    def __init__(self, message: str | None = None, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)

    def metadata(self) -> dict[str, str]:
        return {"field": self.field} if self.field else {}

    @classmethod
    def from_metadata(cls, message: str, metadata: Mapping[str, str]) -> Self:
        return cls(message, metadata.get("field") or None)


class PermissionDeniedError(LogmeshError):
    """The ACL does not allow this subject to do this action on this object."""

    code = "PERMISSION_DENIED"
    status_code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(
        self, subject: str = "", object: str = "", action: str = "", message: str | None = None
    ) -> None:
        self.subject, self.object, self.action = subject, object, action
        super().__init__(
            message
            or f"{subject or 'this identity'} may not {action or 'do this'} on "
            f"{object or 'this object'}: ask an operator to grant it in the ACL policy"
        )

    def metadata(self) -> dict[str, str]:
        return {"subject": self.subject, "object": self.object, "action": self.action}

    @classmethod
    def from_metadata(cls, message: str, metadata: Mapping[str, str]) -> Self:
        get = metadata.get
        return cls(get("subject", ""), get("object", ""), get("action", ""), message)


class UnauthenticatedError(LogmeshError):
    """No client certificate, or one the server does not trust."""

    code = "UNAUTHENTICATED"
    status_code = grpc.StatusCode.UNAUTHENTICATED
    default_message = (
        "no valid client certificate: connect with a certificate signed by the cluster CA "
        "(logmesh certs init)"
    )


class UnavailableError(LogmeshError):
    """The endpoint cannot be reached or is shutting down; the request was not processed."""

    code = "UNAVAILABLE"
    status_code = grpc.StatusCode.UNAVAILABLE
    retriable = True
    invalid_metadata = True
    default_message = "the server is unavailable: retry after a backoff, or try another endpoint"


class DeadlineExceededError(LogmeshError):
    """A read did not finish before its deadline; reads are safe to retry."""

    code = "DEADLINE_EXCEEDED"
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED
    retriable = True
    default_message = "the call did not finish before its deadline: retry, maybe with a longer one"


class OutcomeUnknownError(LogmeshError):
    """A write may or may not have been committed (deadline, or connection lost mid-call).

    Not retriable blindly: a retry can duplicate the record. Read the log to find out, or accept
    duplicates (at-least-once)."""

    code = "OUTCOME_UNKNOWN"
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED
    invalid_metadata = True
    default_message = (
        "the write may or may not have been committed: check the log before retrying, "
        "or retry and accept a possible duplicate"
    )


class CallCancelledError(LogmeshError):
    """The call was cancelled (by the caller, or by the server shutting down)."""

    code = "CANCELLED"
    status_code = grpc.StatusCode.CANCELLED
    default_message = "the call was cancelled"


class ResourceExhaustedError(LogmeshError):
    """A limit was hit (message size, queue depth); retry later or send less."""

    code = "RESOURCE_EXHAUSTED"
    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retriable = True
    default_message = "a server limit was reached: send smaller batches or retry after a backoff"


WIRE_ERRORS: dict[str, type[LogmeshError]] = {
    cls.code: cls
    for cls in (
        InternalError,
        OffsetOutOfRangeError,
        OffsetTruncatedError,
        NotLeaderError,
        NoLeaderError,
        InvalidArgumentError,
        PermissionDeniedError,
        UnauthenticatedError,
        UnavailableError,
        DeadlineExceededError,
        OutcomeUnknownError,
        CallCancelledError,
        ResourceExhaustedError,
    )
}


def _int(metadata: Mapping[str, str], key: str, default: int) -> int:
    value = _opt_int(metadata, key)
    return default if value is None else value


def _opt_int(metadata: Mapping[str, str], key: str) -> int | None:
    try:
        return int(metadata[key])
    except (KeyError, ValueError):
        return None


# ---- server side -----------------------------------------------------------------------------


def to_rich_status(err: LogmeshError) -> status_pb2.Status:
    """The google.rpc.Status for `err`, with one ErrorInfo detail (domain logmesh)."""
    metadata = err.metadata()
    info = error_details_pb2.ErrorInfo(reason=err.code, domain=ERROR_DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(code=err.status_code.value[0], message=err.message, details=[detail])


def to_status(err: LogmeshError) -> grpc.Status:
    """The grpc.Status to abort a call with: code, message and the rich status as trailer."""
    status: grpc.Status = rpc_status.to_status(to_rich_status(err))
    return status


def abort_sync(context: grpc.ServicerContext, err: LogmeshError) -> NoReturn:
    """End the current call of a sync servicer with `err`; raises, as grpc requires."""
    context.abort_with_status(to_status(err))
    raise AssertionError("grpc ServicerContext.abort_with_status returned")


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: LogmeshError) -> NoReturn:
    """End the current call of a grpc.aio servicer with `err`; raises, as grpc requires."""
    status = to_status(err)
    await context.abort(status.code, status.details, status.trailing_metadata)


P = ParamSpec("P")
R = TypeVar("R")
_log = logging.getLogger(__name__)


@overload
def rpc_errors(method: Callable[P, AsyncIterator[R]]) -> Callable[P, AsyncIterator[R]]: ...
@overload
def rpc_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
def rpc_errors(method: Callable[P, Any]) -> Callable[P, Any]:
    """Decorate a grpc.aio servicer method (unary or streaming; the context is its last
    argument): a LogmeshError aborts the call with its rich status; any other exception is
    logged here with its traceback and reaches the client as InternalError, whose message
    reveals nothing of it."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Any]:
            try:
                async for item in method(*args, **kwargs):
                    yield item
            except Exception as e:
                await _abort_for(args[-1], e, method)

        return stream

    @functools.wraps(method)
    async def unary(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return await method(*args, **kwargs)
        except Exception as e:
            await _abort_for(args[-1], e, method)

    return unary


async def _abort_for(context: Any, e: Exception, method: Callable[..., Any]) -> NoReturn:
    if isinstance(e, grpc.aio.AbortError):
        raise e  # the method aborted the call itself: keep its status
    if not isinstance(e, LogmeshError):
        _log.error("unexpected error in %s", method.__qualname__, exc_info=e)
        e = InternalError()
    await abort(context, e)


# ---- client side -----------------------------------------------------------------------------


def from_rpc_error(e: grpc.RpcError, *, write: bool = False) -> LogmeshError:
    """The LogmeshError a failed call stands for (works for grpc and grpc.aio errors).

    `write` says whether the call may have proposed a record: then a deadline or a lost
    connection means the outcome is unknown, not that nothing happened.
    """
    code, details, trailers = _call_parts(e)
    info = _error_info(trailers)
    if info is not None and info.reason in WIRE_ERRORS:
        return WIRE_ERRORS[info.reason].from_metadata(details, dict(info.metadata))
    return _from_bare_code(code, details, write)


def _call_parts(e: grpc.RpcError) -> tuple[grpc.StatusCode, str, Iterable[tuple[str, Any]]]:
    # grpc.RpcError raised by a sync call is also a grpc.Call; grpc.aio.AioRpcError has the same
    # three methods, all synchronous. Anything else (a bare RpcError) carries no status.
    code_fn = getattr(e, "code", None)
    code = code_fn() if code_fn is not None else grpc.StatusCode.UNKNOWN
    details_fn = getattr(e, "details", None)
    details = (details_fn() if details_fn is not None else None) or ""
    trailers_fn = getattr(e, "trailing_metadata", None)
    trailers = (trailers_fn() if trailers_fn is not None else None) or ()
    return code, details, trailers


def _error_info(trailers: Iterable[tuple[str, Any]]) -> error_details_pb2.ErrorInfo | None:
    for key, value in trailers:
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                return info
    return None


def _from_bare_code(code: grpc.StatusCode, details: str, write: bool) -> LogmeshError:
    """Map a status without our ErrorInfo (from grpc itself, Envoy or a foreign server)."""
    message = f"{details} ({code.name})" if details else ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        if write:
            return OutcomeUnknownError(_join(message, OutcomeUnknownError))
        return DeadlineExceededError(_join(message, DeadlineExceededError))
    if code == grpc.StatusCode.UNAVAILABLE:
        # A failed connect never sent the request; any other UNAVAILABLE on a write may have
        # come after the server received it.
        if write and "failed to connect" not in details.lower():
            return OutcomeUnknownError(_join(message, OutcomeUnknownError))
        return UnavailableError(_join(message, UnavailableError))
    cls = _BARE_CODES.get(code, InternalError)
    return cls.from_metadata(_join(message, cls), {})


def _join(message: str, cls: type[LogmeshError]) -> str:
    return f"{message}: {cls.default_message}" if message else cls.default_message


_BARE_CODES: dict[grpc.StatusCode, type[LogmeshError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: OffsetOutOfRangeError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.CANCELLED: CallCancelledError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}


# ---- local errors of the shared package (never sent over the wire) ---------------------------


class CertsError(Exception):
    """`logmesh certs` cannot do what was asked; the message says why and what to do."""


class CertsDirError(CertsError):
    """The certificate directory cannot be created, read or written."""


class CaKeyMissingError(CertsError):
    """ca.pem is present without ca.key (or the reverse): new certificates cannot be signed."""


class CertMismatchError(CertsError):
    """An existing certificate was not issued by the CA in the same directory."""


class InvalidCertNameError(CertsError):
    """A certificate name is not a valid DNS label (also used as a file name)."""


class CertMissingError(CertsError):
    """A service asked for a certificate that `logmesh certs init` has not made."""


class ServiceProcessError(Exception):
    """A service process started by logmesh.testing exited or never said it was ready."""
