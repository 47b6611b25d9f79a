"""Reading the archive back: which hour files a household has there over a span, and their bytes.

Read-only, for the readers (the export, the admin's chart); the upload writes through ``loggerapp.rotation``.
Both archives of ``STORAGES["archive"]`` are read: S3 (django-storages' S3Storage) and a local folder
(FileSystemStorage, the embedded default).

1. The archive is listed, not looked up in the upload ledger: it is the truth, and it also holds hours the
   ledger never saw (another host, the old logger, a rebuilt database). Every kind of hour file of a household's
   day is in one folder (``layout.archive_folder``), so one listing finds all of them, ``.gz`` or not.
2. S3: ``ListObjectsV2`` of each month's folder of the span (a month of one household is one request: 744 keys
   fit in a page of 1,000), or of each day's folder when the span holds at most ``FEW_DAYS`` days of a month
   (a day's chart lists 24 keys, not 744). Prefixes only: SeaweedFS reads ``StartAfter`` as a folder entry and
   skips that folder's keys, so a walk from a start key is not portable. Folder: one listing per day.
3. A name that does not parse, names another household, or sits in another day's folder is not ours, and is
   ignored (as the upload ignores such local files).
4. Errors: an archive that cannot be listed or read (unreachable, refused credentials, missing bucket, a read
   cut short) raises ``ArchiveReadError``; a reader cannot then promise every line, so it stops and says so.
   An object gone between listing and reading gives None (the upload never deletes one, so this is rare).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage

from loggerapp.hourfiles.layout import StoredName, archive_folder, hour_start, parse_stored_name

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
LIST_PAGE = 1000  # S3's largest page
FEW_DAYS = 3  # up to this many days of a month are listed day by day, more as the whole month


class ArchiveReadError(Exception):
    """The archive could not be listed or an object could not be read: what is read back would be incomplete."""


@dataclass(frozen=True)
class ArchivedObject:
    """One hour file in the archive: its key, what its name says, and its size as stored."""

    key: str
    name: StoredName
    size: int


class ArchiveReader(Protocol):
    prefix: str

    def objects(self, cloud_id: str, start: datetime, end: datetime) -> list[ArchivedObject]:
        """The household's hour files of every kind whose hour overlaps [start, end), in key order."""
        ...

    def fetch(self, key: str) -> bytes | None:
        """The stored bytes of one object (gzip or not, as stored); None when it is not there."""
        ...


def _days(start: datetime, end: datetime) -> list[datetime]:
    """The UTC days holding the hours that overlap [start, end)."""
    first = hour_start(start).replace(hour=0)
    last = hour_start(end - timedelta(microseconds=1)).replace(hour=0)
    days = []
    day = first
    while day <= last:
        days.append(day)
        day += DAY
    return days


def _listing_prefixes(household: str, days: list[datetime]) -> list[str]:
    """The key prefixes to list for these days (point 2): a month's folder, or the days' own when a span covers
    only a few days of that month (a day's chart lists a day, not a month)."""
    months: dict[tuple[int, int], list[datetime]] = {}
    for day in days:
        months.setdefault((day.year, day.month), []).append(day)
    prefixes = []
    for (year, month), month_days in months.items():
        if len(month_days) <= FEW_DAYS:
            prefixes += [f"{household}{day:%Y/%m/%d}/" for day in month_days]
        else:
            prefixes.append(f"{household}{year:04d}/{month:02d}/")
    return prefixes


def _household_folder(cloud_id: str, prefix: str) -> str:
    """ "<prefix>/<cloud_id>/": the folder above the household's year/month/day folders."""
    return archive_folder(cloud_id, datetime(2000, 1, 1, tzinfo=UTC), prefix).rsplit("/", 3)[0] + "/"


def _ours(key: str, household: str, cloud_id: str, start: datetime, end: datetime, size: int) -> ArchivedObject | None:
    """The object if its name parses, is this household's, sits in its own day's folder and is in the span."""
    name = key.rpartition("/")[2]
    parsed = parse_stored_name(name)
    if parsed is None or parsed.cloud_id != cloud_id or not hour_start(start) <= parsed.hour < end:
        return None
    if key != f"{household}{parsed.hour:%Y/%m/%d}/{name}":
        return None
    return ArchivedObject(key=key, name=parsed, size=size)


class S3ArchiveReader:
    """Objects in the bucket of an S3Storage, read with its own boto3 client (thread-safe, shared pool)."""

    def __init__(self, storage: Any, prefix: str) -> None:  # an S3Storage (django-storages has no type hints)
        self.prefix = prefix
        self.bucket = storage.bucket_name
        self.location = (storage.location or "").strip("/")
        # The storage's own client, taken once: a boto3 client is thread-safe and its connection pool is shared
        # by the fetching threads (S3Storage would build a resource per thread, ~0.2 s of CPU each).
        self.client = storage.connection.meta.client

    def __repr__(self) -> str:
        return f"<S3ArchiveReader bucket={self.bucket!r}>"

    def _key(self, name: str) -> str:
        return f"{self.location}/{name}" if self.location else name

    def _error(self, exc: Exception, what: str) -> ArchiveReadError:
        response = getattr(exc, "response", None) or {}
        code = response.get("Error", {}).get("Code") or type(exc).__name__
        return ArchiveReadError(f"S3 bucket {self.bucket!r}: cannot {what} ({code})")

    def objects(self, cloud_id: str, start: datetime, end: datetime) -> list[ArchivedObject]:
        household = self._key(_household_folder(cloud_id, self.prefix))
        found: list[ArchivedObject] = []
        for prefix in _listing_prefixes(household, _days(start, end)):
            for key, size in self._list(prefix):
                found_object = _ours(key, household, cloud_id, start, end, size)
                if found_object is not None:
                    found.append(found_object)
        return found

    def _list(self, prefix: str) -> Iterator[tuple[str, int]]:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE}
        try:
            while True:
                page = self.client.list_objects_v2(**request)
                for item in page.get("Contents", []):
                    yield item["Key"], int(item.get("Size", 0))
                if not page.get("IsTruncated"):
                    return
                request["ContinuationToken"] = page["NextContinuationToken"]
        except Exception as exc:
            raise self._error(exc, f"list {prefix}") from exc

    def fetch(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return bytes(response["Body"].read())  # botocore checks the length read against Content-Length
        except Exception as exc:
            response = getattr(exc, "response", None) or {}
            if response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, f"read {key}") from exc


class FolderArchiveReader:
    """Files under a FileSystemStorage's location (the embedded default archive)."""

    def __init__(self, storage: FileSystemStorage, prefix: str) -> None:
        self.prefix = prefix
        self.storage = storage

    def __repr__(self) -> str:
        return f"<FolderArchiveReader location={self.storage.location!r}>"

    def objects(self, cloud_id: str, start: datetime, end: datetime) -> list[ArchivedObject]:
        found: list[ArchivedObject] = []
        household = _household_folder(cloud_id, self.prefix)
        for day in _days(start, end):
            folder = archive_folder(cloud_id, day, self.prefix)
            try:
                entries = sorted(Path(self.storage.path(folder)).iterdir())
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ArchiveReadError(f"archive folder {self.storage.location}: cannot list {folder} ({exc})") from exc
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue  # the upload's temporary files start with a dot
                found_object = _ours(f"{folder}/{entry.name}", household, cloud_id, start, end, entry.stat().st_size)
                if found_object is not None:
                    found.append(found_object)
        return found

    def fetch(self, key: str) -> bytes | None:
        try:
            return Path(self.storage.path(key)).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArchiveReadError(f"archive folder {self.storage.location}: cannot read {key} ({exc})") from exc


def archive_reader(storage: Storage | None = None, prefix: str | None = None) -> ArchiveReader:
    """The reader of ``STORAGES["archive"]`` (or ``storage``), with ARCHIVE_PREFIX (or ``prefix``)."""
    from django.conf import settings
    from django.core.files.storage import storages

    storage = storage if storage is not None else storages["archive"]
    prefix = settings.ARCHIVE_PREFIX if prefix is None else prefix
    if isinstance(storage, FileSystemStorage):
        return FolderArchiveReader(storage, prefix)
    from storages.backends.s3 import S3Storage  # type: ignore[import-untyped]  # imports boto3: only when an S3 archive is configured

    if isinstance(storage, S3Storage):
        return S3ArchiveReader(storage, prefix)
    raise ImproperlyConfigured(
        f"STORAGES['archive'] is a {type(storage).__name__}; reading back supports S3Storage and FileSystemStorage."
    )
