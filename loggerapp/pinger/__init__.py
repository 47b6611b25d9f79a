"""The pinger: polls every active household on a fixed, drift-free schedule and writes one JSON line per poll.

Modules, one job each:
- ``schedule``: pure arithmetic of phases, due times, shards and back-off, and the tick queue;
- ``decisions``: pure decisions about one household (tick, success, failure and back-off, status change);
- ``outcomes``: counting what the polls did, once, for the run, the summary window and Prometheus;
- ``files``: the hour-file writer (bounded pool of O_APPEND handles) and its writer thread;
- ``stats``: per-household statistics accumulated in memory and flushed to the database in batches;
- ``flusher``: the thread that writes the statistics and the heartbeat;
- ``registry``: the active households, reloaded from the database, and applied to the polled set;
- ``metrics``: Prometheus counters of this process;
- ``runner``: the asyncio loop tying them together (``run_pinger``): start, loop, drain, summary.

The lines themselves are built by ``loggerapp.hourfiles.lines``, the one owner of the hour file's format.
"""
