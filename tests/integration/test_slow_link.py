"""Clients and nodes connect over a slow link (a WAN, a loaded host), not only over loopback.

grpc core takes `grpc.min_reconnect_backoff_ms` as the time a connection attempt (TCP and the
TLS handshake) may take. logmesh once set it to 100 ms with the reconnect backoff, so over a
link with 150 ms of latency a call's first connection attempt always failed (UNAVAILABLE, as
calls do not wait for ready), and on a busy 2-core machine a handshake now and then missed it
("Handshake read failed (Endpoint closing)"). A proxy on loopback delays what the node sends;
a call through it must succeed on that first attempt.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import grpc

from logmesh import tls
from logmesh._gen.log.v1 import log_pb2 as pb
from logmesh._gen.log.v1 import log_pb2_grpc
from logmesh.cluster import StorageCluster

LINK_DELAY_S = 0.15  # one way, node to client: every server flight of the handshake waits it
CALL_DEADLINE_S = 10.0
CHUNK_BYTES = 65536


@contextlib.contextmanager
def delaying_proxy(upstream: tuple[str, int], delay_s: float) -> Iterator[int]:
    """A TCP proxy on a loopback port (yielded) that forwards to `upstream`, holding back each
    chunk the upstream sends for `delay_s`."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sockets: list[socket.socket] = [listener]

    def pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(CHUNK_BYTES):
                if delay:
                    time.sleep(delay)  # the link's latency: what this proxy is for
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                server = socket.create_connection(upstream)
                sockets.extend([client, server])
                for args in ((client, server, 0.0), (server, client, delay_s)):
                    threading.Thread(target=pump, args=args, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()


def test_a_client_connects_and_produces_over_a_link_with_latency(
    storage_cluster: StorageCluster,
) -> None:
    leader = storage_cluster.leader()
    assert storage_cluster.certs_dir is not None and leader.port is not None
    with delaying_proxy(("127.0.0.1", leader.port), LINK_DELAY_S) as port:
        channel = grpc.secure_channel(
            f"127.0.0.1:{port}",
            tls.channel_credentials(storage_cluster.certs_dir, "root"),
            options=tls.channel_options(),
        )
        with channel:
            reply = log_pb2_grpc.LogStub(channel).Produce(
                pb.ProduceRequest(record=pb.Record(value=b"over a slow link")),
                timeout=CALL_DEADLINE_S,  # no wait_for_ready: the first attempt must connect
            )
    assert reply.offset >= 0
