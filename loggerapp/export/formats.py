"""The three export formats, each turning rows into bytes as they come, so an export streams hour by hour.

1. **CSV**: a header of the column names, then one line per row ending in "\\n"; UTF-8; quoted only where needed
   (Python's csv, minimal quoting). Empty means null. Times are RFC 3339 in UTC (``2026-01-05T00:00:06.250000Z``:
   six decimals when the time has a fraction, none when it is a whole second); numbers are Python's shortest
   exact form (``1.234``); booleans ``true``/``false``.
2. **JSON lines** (``jsonl``, the API's ``ndjson``): one object per row with every column in order, the same
   text for times, JSON numbers (shortest exact form), booleans and null; compact, UTF-8 (orjson).
3. **Parquet** (pyarrow): typed columns (timestamp[us, UTC], float64, bool, string), each column's meaning in
   its field metadata, zstd compression, a row group written every ``ROW_GROUP_ROWS`` rows. pyarrow writes into
   a sink that this writer drains, so Parquet streams like the others (a file, stdout, an HTTP response).

The same rows always give the same bytes: the API's CSV equals the command's byte for byte.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from loggerapp.export.columns import COLUMN_NAMES, COLUMNS, Row, micros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROW_GROUP_ROWS = 50_000  # about three days of one household at six seconds
_NEWLINE = orjson.OPT_APPEND_NEWLINE


_HOUR_TEXTS: dict[int, str] = {}


def _hour_text(hour: int) -> str:
    """ "2026-01-05T06:" for an hour since the epoch: formatted once per hour, not once per value."""
    text = _HOUR_TEXTS.get(hour)
    if text is None:
        if len(_HOUR_TEXTS) > 100_000:  # a year and more of distinct hours: start again rather than grow
            _HOUR_TEXTS.clear()
        text = _HOUR_TEXTS[hour] = f"{EPOCH + timedelta(hours=hour):%Y-%m-%dT%H:}"
    return text


_MINUTES_SECONDS = tuple(f"{within // 60:02d}:{within % 60:02d}" for within in range(3600))


def rfc3339(seconds: float) -> str:
    """A time in Unix seconds as RFC 3339 UTC text, to the microsecond (point 1 of the module docstring)."""
    whole, fraction = divmod(micros(seconds), 1_000_000)
    hour, within = divmod(whole, 3600)
    if fraction:
        return f"{_hour_text(hour)}{_MINUTES_SECONDS[within]}.{fraction:06d}Z"
    return f"{_hour_text(hour)}{_MINUTES_SECONDS[within]}Z"


# Which columns need more than their value, found once: a month of one household is 432,000 rows.
_TIMES = tuple(index for index, column in enumerate(COLUMNS) if column.type == "timestamp")
_BOOLEANS = tuple(index for index, column in enumerate(COLUMNS) if column.type == "bool")


def json_values(row: Row) -> list[Any]:
    """A row as JSON lines write it: times as RFC 3339 text, the rest as it is (null stays null)."""
    values = list(row)
    for index in _TIMES:
        if values[index] is not None:
            values[index] = rfc3339(values[index])
    return values


def csv_values(row: Row) -> list[Any]:
    """A row as CSV writes it: empty for null, times as text, true/false; csv writes a float as repr(), the
    shortest exact form (point 1 of the module docstring)."""
    values = ["" if value is None else value for value in row]
    for index in _TIMES:
        if row[index] is not None:
            values[index] = rfc3339(row[index])
    for index in _BOOLEANS:
        if row[index] is not None:
            values[index] = "true" if row[index] else "false"
    return values


class RowWriter(Protocol):
    """Rows in, bytes out: ``header()`` first, ``rows()`` as often as needed, ``finish()`` last."""

    name: str
    media_type: str
    extension: str

    def header(self) -> bytes: ...

    def rows(self, rows: Sequence[Row]) -> bytes: ...

    def finish(self) -> bytes: ...


class CsvWriter:
    name = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")

    def header(self) -> bytes:
        self._csv.writerow(COLUMN_NAMES)
        return self._take()

    def rows(self, rows: Sequence[Row]) -> bytes:
        self._csv.writerows(csv_values(row) for row in rows)
        return self._take()

    def finish(self) -> bytes:
        return b""


class JsonLinesWriter:
    name = "jsonl"
    media_type = "application/x-ndjson"
    extension = "jsonl"

    def header(self) -> bytes:
        return b""

    def rows(self, rows: Sequence[Row]) -> bytes:
        # orjson: compact, UTF-8, a float's shortest exact form; rows never hold NaN (columns.finite_number).
        return b"".join(
            orjson.dumps(dict(zip(COLUMN_NAMES, json_values(row), strict=True)), option=_NEWLINE) for row in rows
        )

    def finish(self) -> bytes:
        return b""


class _Sink(io.RawIOBase):
    """Where pyarrow writes the Parquet file: kept in memory until the writer drains it."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class ParquetWriter:
    name = "parquet"
    media_type = "application/vnd.apache.parquet"
    extension = "parquet"

    def __init__(self, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]  # imported only for Parquet: a large library
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self._pa = pa
        types = {
            "string": pa.string(),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "float": pa.float64(),
            "bool": pa.bool_(),
        }
        self.schema = pa.schema(
            [pa.field(column.name, types[column.type], metadata={"meaning": column.meaning}) for column in COLUMNS]
        )
        self.row_group_rows = max(1, row_group_rows)
        self._pending: list[Row] = []
        self._sink = _Sink()
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")

    def header(self) -> bytes:
        return self._sink.drain()

    def _write_group(self, rows: Sequence[Row]) -> None:
        columns = []
        for index, column in enumerate(COLUMNS):
            values = [row[index] for row in rows]
            if column.type == "timestamp":
                values = [None if value is None else micros(value) for value in values]
            columns.append(self._pa.array(values, type=self.schema.field(index).type))
        self._writer.write_table(self._pa.Table.from_arrays(columns, schema=self.schema))

    def rows(self, rows: Sequence[Row]) -> bytes:
        self._pending.extend(rows)
        while len(self._pending) >= self.row_group_rows:
            self._write_group(self._pending[: self.row_group_rows])
            del self._pending[: self.row_group_rows]
        return self._sink.drain()

    def finish(self) -> bytes:
        if self._pending:
            self._write_group(self._pending)
            self._pending = []
        self._writer.close()
        return self._sink.drain()


FORMATS: dict[str, type[CsvWriter] | type[JsonLinesWriter] | type[ParquetWriter]] = {
    "csv": CsvWriter,
    "jsonl": JsonLinesWriter,
    "parquet": ParquetWriter,
}


def writer_for(name: str) -> RowWriter:
    """A new writer of the named format (``csv``, ``jsonl`` or ``parquet``)."""
    return FORMATS[name]()
