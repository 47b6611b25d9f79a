"""CPU and memory one EAGLE answer can cost the client, bounded (EAGLE_MAX_ANSWER_BYTES) and, as a baseline in the
same run, read whole as the client did before the ceiling.

Usage:  .venv/bin/python bench/eagle_answers.py [--bomb-mb 256] [--repeat 5]

Prints, for each case, CPU milliseconds per answer (best of --repeat) and the bytes the client ends up holding:
1. a real `InstantaneousDemand` answer, parsed (the steady state of the pinger);
2. the costliest answers that still fit under the 64 KB ceiling (64 KB of nested or repeated XML elements),
   which the async client parses in a worker thread, off the event loop;
3. a gzip bomb of --bomb-mb MiB through BoundedBody (stopped at the ceiling) next to decompressing it whole
   (what aiohttp's auto-decompression did), and the ratio of the two.
No network and no database: the numbers are the parsing and decoding work alone.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loggerapp.eagle.bounded import DEFAULT_MAX_ANSWER_BYTES, BoundedBody
from loggerapp.eagle.documents import parse_body
from loggerapp.eagle.errors import BadResponse
from loggerapp.eagle.legacy import parse_instantaneous_demand
from loggerapp.simulator.answers import gzip_bomb

REAL = (
    b"<InstantaneousDemand>\n  <DeviceMacId>0xd8d5b90000001f2c</DeviceMacId>\n"
    b"  <MeterMacId>0x000781000081a3d4</MeterMacId>\n  <TimeStamp>0x1c91ec39</TimeStamp>\n"
    b"  <Demand>0x0003b0</Demand>\n  <Multiplier>0x00000001</Multiplier>\n  <Divisor>0x000003e8</Divisor>\n"
    b"  <DigitsRight>0x03</DigitsRight>\n  <DigitsLeft>0x06</DigitsLeft>\n"
    b"  <SuppressLeadingZero>Y</SuppressLeadingZero>\n</InstantaneousDemand>\n"
)


def best_ms(work, repeat: int, inner: int = 1) -> float:
    """Best CPU time of `inner` calls of work(), in ms per call."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(inner):
            work()
        times.append((time.process_time() - started) / inner * 1000)
    return min(times)


def bounded(data: bytes, encoding: str | None) -> None:
    body = BoundedBody(DEFAULT_MAX_ANSWER_BYTES, encoding)
    try:
        for start in range(0, len(data), 16384):
            body.feed(data[start : start + 16384])
        body.finish()
    except BadResponse:
        pass


def parse_quietly(data: bytes) -> None:
    try:
        parse_body(data)
    except BadResponse:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    cap = DEFAULT_MAX_ANSWER_BYTES
    deep = b"<a>" * (cap // 7) + b"</a>" * (cap // 7)
    wide = b"<DeviceList>" + b"<Device/>" * ((cap - 30) // 9) + b"</DeviceList>"
    print(f"ceiling (EAGLE_MAX_ANSWER_BYTES default): {cap:,} bytes")
    real_ms = best_ms(lambda: parse_instantaneous_demand(200, REAL, "001f2c", "cloud"), options.repeat, 2000)
    deep_ms = best_ms(lambda: parse_quietly(deep), options.repeat)
    wide_ms = best_ms(lambda: parse_quietly(wide), options.repeat)
    print(f"real answer ({len(REAL)} B), parsed:                  {real_ms * 1000:9.1f} us")
    print(f"64 KB of nested elements ({len(deep):,} B), parsed:   {deep_ms:9.1f} ms")
    print(f"64 KB of repeated elements ({len(wide):,} B), parsed: {wide_ms:9.1f} ms")

    size = options.bomb_mb * 1024 * 1024
    bomb = gzip_bomb(size)
    print(f"gzip bomb: {options.bomb_mb} MiB of zeros in {len(bomb):,} B on the wire")
    # What the ceiling reads of it: the first ceiling of the wire bytes (the rest is never received).
    capped_ms = best_ms(lambda: bounded(bomb[:cap], "gzip"), options.repeat)
    whole_ms = best_ms(lambda: zlib.decompressobj(47).decompress(bomb), max(1, options.repeat // 2))
    print(f"  through BoundedBody (stops at the ceiling): {capped_ms:9.3f} ms CPU, holds <= {cap:,} B")
    print(f"  baseline, decompressed whole:               {whole_ms:9.3f} ms CPU, holds {size:,} B")
    print(f"  ratio baseline / bounded: {whole_ms / capped_ms:,.0f}x CPU, {size / cap:,.0f}x memory")


if __name__ == "__main__":
    main()
