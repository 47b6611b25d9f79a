"""The pinger: polls every active household on a fixed, drift-free schedule and writes one JSON line per poll.

Modules, one job each:
- ``schedule``: pure arithmetic of phases, due times, shards and back-off;
- ``lines``: pure formatting of success and failure lines;
- ``files``: the hour-file writer (bounded pool of O_APPEND handles) and its writer thread;
- ``stats``: per-household statistics accumulated in memory and flushed to the database in batches;
- ``registry``: the active households, reloaded from the database;
- ``metrics``: Prometheus counters of this process;
- ``runner``: the asyncio loop tying them together (``run_pinger``).
"""
