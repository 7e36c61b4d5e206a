"""The deterministic Raft simulator (TigerBeetle VOPR style): one seed replays one run.

Importable as the package `simulation` (tests/ on sys.path; conftest.py and cli.py put it
there). Modules: network, disk, checkers, cluster, workload, simulator, cli; engine mode
(the real log engine on a crashing simulated disk): engine_storage, engine_disk,
state_files, crash_checks.
"""
