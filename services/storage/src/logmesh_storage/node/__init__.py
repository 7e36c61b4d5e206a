"""The storage node: the asyncio driver, gRPC servicers and lifecycle around the Raft core
(`..raft`) and the log engine (`..log`). Everything with I/O lives here; the core and the engine
stay free of asyncio, sockets and clocks."""
