"""The permanent archive: create-only writes, conditional replaces and verification, for S3 and a local folder.

Both go through the storage configured as ``STORAGES["archive"]`` (django-storages' S3Storage, or Django's
FileSystemStorage for the embedded default) behind one small interface, so the upload procedure in
``store_verified`` is the same code for both:

1. Write the object only if its key is free (S3: ``PutObject`` with ``If-None-Match: *`` through the storage's
   own boto3 client, since ``storage.save()`` can neither refuse to overwrite nor avoid renaming; folder: a
   fully written temporary file hard-linked into place, which is atomic and fails if the name exists).
2. Verify: the archive must confirm the MD5 of what it stored. S3: the PUT carries ``Content-MD5``, so the server
   refuses a body whose MD5 differs, and its answer's ETag (the MD5 of a single-part object; we never upload in
   parts) must equal ours; only when that ETag is not an MD5 (or ``ARCHIVE_VERIFY_WITH_HEAD`` is on) is the
   object's size, ETag and SHA-256 metadata read with a HEAD. Folder: the stored bytes are read back. Only then
   may the caller delete the local file (docs/rotation.md argues why the PUT's answer is as strong as a HEAD).
3. If the key already holds data (a rerun, another host, a restarted pinger), read it. When it already holds
   every line of ours, the hour is done. Otherwise merge the two sets of lines and replace the object only if
   it is still the version that was read (S3 ``If-Match`` on its ETag, which SeaweedFS and AWS honour; folder:
   compare under an exclusive lock), then verify as in 2. A lost race is retried from the read.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage, storages

from iseif.private import make_private_dir, open_private
from loggerapp.hourfiles import content as hour_content

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-ndjson"
MAX_MERGE_ROUNDS = 3
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Digest:
    """Size and checksums of a byte string: what verification compares."""

    size: int
    md5: str
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls(size=len(data), md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest())  # noqa: S324 (S3's ETag is an MD5)


class ArchiveError(Exception):
    """Storing one object failed; the local file stays and the next run retries it."""


class ArchiveUnavailable(ArchiveError):
    """The archive as a whole refuses or cannot be reached (network, credentials, missing bucket, full disk)."""


class ObjectExists(ArchiveError):
    """A create-only write found the key taken."""


class ObjectChanged(ArchiveError):
    """A conditional replace found the object changed (or gone) since it was read."""


class ObjectMissing(ArchiveError):
    """The object is not there."""


class VerificationFailed(ArchiveError):
    """The stored object does not match what was sent."""


@dataclass(frozen=True)
class StoredObject:
    """What the archive says about an object. ``md5``/``sha256`` are None when the archive cannot tell."""

    size: int
    md5: str | None
    sha256: str | None


class Archive(Protocol):
    """The operations the upload needs; ``name`` is the archive key (e.g. rainforest-logs/002506/...).

    ``create`` and ``replace`` return the MD5 the archive itself computed over the bytes it stored when its answer
    says so (S3: the PUT's ETag), else None, and then ``stat`` is asked.
    """

    def create(self, name: str, body: bytes, digest: Digest, content_encoding: str | None) -> str | None: ...

    def replace(
        self, name: str, body: bytes, digest: Digest, content_encoding: str | None, if_match: str
    ) -> str | None: ...

    def stat(self, name: str) -> StoredObject: ...

    def read(self, name: str) -> tuple[bytes, str]:
        """The object's bytes and the version tag to pass as ``if_match`` to ``replace``."""
        ...


# --- S3 (django-storages) ------------------------------------------------------------------------------------


def _client_error_parts(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


# Error codes that say nothing about one object but everything about the archive: stop hammering it.
_ARCHIVE_WIDE_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "403",
}


class S3Archive:
    """Objects in the bucket of a django-storages S3Storage, written with its own boto3 client."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.bucket = storage.bucket_name
        self.location = (storage.location or "").strip("/")
        # The storage's own boto3 client (what storage.save() would use), taken once: S3Storage builds a boto3
        # resource per thread, which costs ~0.2 s of CPU each, while one client is thread-safe and shares its
        # connection pool (max_pool_connections) between the upload threads.
        self._client = storage.connection.meta.client

    def __repr__(self) -> str:
        return f"<S3Archive bucket={self.bucket!r} location={self.location!r}>"

    def _key(self, name: str) -> str:
        return f"{self.location}/{name}" if self.location else name

    def _translate(self, exc: Exception, name: str) -> ArchiveError:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(exc, ClientError):
            code, status = _client_error_parts(exc)
            reason = f"{code or status}: {exc.response.get('Error', {}).get('Message', '') or 'refused'}"
            if status == 412 or code in {"PreconditionFailed", "ConditionalRequestConflict"} or status == 409:
                return ObjectChanged(reason)
            if status == 404 and code in {"404", "NoSuchKey", "NotFound"}:
                return ObjectMissing(f"{name}: not in the archive")
            if code in _ARCHIVE_WIDE_CODES or status in (401, 403) or status >= 500:
                return ArchiveUnavailable(f"S3 bucket {self.bucket!r}: {reason}")
            return ArchiveError(f"S3 {reason}")
        if isinstance(exc, NoCredentialsError):
            return ArchiveUnavailable("S3: no credentials configured")
        if isinstance(exc, BotoCoreError):
            # Connection refused, timeouts, DNS: the endpoint, not this object.
            return ArchiveUnavailable(f"S3 unreachable: {exc}")
        return ArchiveError(f"{type(exc).__name__}: {exc}")

    def _put(self, name: str, body: bytes, digest: Digest, content_encoding: str | None, **condition) -> str | None:
        """PutObject; the ETag of its answer when it is an MD5 (what the server computed over what it stored)."""
        extra = {"ContentEncoding": content_encoding} if content_encoding else {}
        answer = self._client.put_object(
            Bucket=self.bucket,
            Key=self._key(name),
            Body=body,
            ContentMD5=base64.b64encode(bytes.fromhex(digest.md5)).decode(),
            ContentType=CONTENT_TYPE,
            Metadata={"sha256": digest.sha256},
            **extra,
            **condition,
        )
        etag = str(answer.get("ETag", "")).strip('"')
        return etag if _MD5_HEX.fullmatch(etag) else None  # a multipart or encrypted object's ETag is no MD5

    def create(self, name: str, body: bytes, digest: Digest, content_encoding: str | None) -> str | None:
        try:
            return self._put(name, body, digest, content_encoding, IfNoneMatch="*")
        except Exception as exc:
            error = self._translate(exc, name)
            if isinstance(error, ObjectChanged):
                raise ObjectExists(name) from exc
            raise error from exc

    def replace(
        self, name: str, body: bytes, digest: Digest, content_encoding: str | None, if_match: str
    ) -> str | None:
        try:
            return self._put(name, body, digest, content_encoding, IfMatch=f'"{if_match}"')
        except Exception as exc:
            raise self._translate(exc, name) from exc

    def stat(self, name: str) -> StoredObject:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            raise self._translate(exc, name) from exc
        etag = str(head.get("ETag", "")).strip('"')
        return StoredObject(
            size=int(head["ContentLength"]),
            md5=etag if _MD5_HEX.fullmatch(etag) else None,  # a multipart ETag ("...-2") is not an MD5
            sha256=head.get("Metadata", {}).get("sha256"),
        )

    def read(self, name: str) -> tuple[bytes, str]:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(name))
            body = response["Body"].read()
        except Exception as exc:
            raise self._translate(exc, name) from exc
        etag = str(response.get("ETag", "")).strip('"')
        if _MD5_HEX.fullmatch(etag) and Digest.of(body).md5 != etag:
            raise ArchiveError(f"{name}: the object read does not match its ETag (truncated download?)")
        return body, etag


# --- Local folder (FileSystemStorage) ------------------------------------------------------------------------


def _fsync_directory(folder: Path) -> None:
    """Make a new directory entry durable: the local file is deleted right after, and the archive folder may sit
    on another file system, where a power cut could otherwise lose the entry but not the deletion."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSystemArchive:
    """Files under a FileSystemStorage's location, written so that no reader ever sees half an object."""

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def __repr__(self) -> str:
        return f"<FileSystemArchive location={self.storage.location!r}>"

    def _path(self, name: str) -> Path:
        return Path(self.storage.path(name))  # safe_join: a name can never leave the archive folder

    def _write_temp(self, path: Path, body: bytes) -> Path:
        # Every missing folder level gets the storage's mode, and the file is never more open than its final
        # mode, whatever the umask (iseif/private.py: archived hour files say when people are home).
        mode = self.storage.directory_permissions_mode
        if mode is not None:
            make_private_dir(path.parent, mode)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = open_private(temp, os.O_WRONLY | os.O_EXCL, self.storage.file_permissions_mode or 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        if self.storage.file_permissions_mode is not None:
            os.chmod(temp, self.storage.file_permissions_mode)
        return temp

    def create(self, name: str, body: bytes, digest: Digest, content_encoding: str | None) -> str | None:
        path = self._path(name)
        try:
            temp = self._write_temp(path, body)
            try:
                os.link(temp, path)  # atomic, and refuses an existing name: a create-only write
            except FileExistsError:
                raise ObjectExists(name) from None
            finally:
                temp.unlink(missing_ok=True)
            _fsync_directory(path.parent)
        except ArchiveError:
            raise
        except OSError as exc:
            raise ArchiveUnavailable(f"archive folder {self.storage.location}: {exc}") from exc
        return None  # nothing computed by the store itself: verification reads the bytes back

    def replace(
        self, name: str, body: bytes, digest: Digest, content_encoding: str | None, if_match: str
    ) -> str | None:
        path = self._path(name)
        try:
            with open(path, "rb") as current:
                # Replacers serialise on the lock; the loser of a race then reads the winner's content (the path
                # now names a new file) and sees that it changed, exactly like S3's If-Match.
                fcntl.flock(current.fileno(), fcntl.LOCK_EX)
                if Digest.of(path.read_bytes()).md5 != if_match:
                    raise ObjectChanged(f"{name}: changed since it was read")
                temp = self._write_temp(path, body)
                os.replace(temp, path)
            _fsync_directory(path.parent)
        except FileNotFoundError as exc:
            raise ObjectChanged(f"{name}: gone since it was read") from exc
        except ArchiveError:
            raise
        except OSError as exc:
            raise ArchiveUnavailable(f"archive folder {self.storage.location}: {exc}") from exc
        return None

    def stat(self, name: str) -> StoredObject:
        body, _ = self.read(name)
        digest = Digest.of(body)  # verification reads the stored bytes back
        return StoredObject(size=digest.size, md5=digest.md5, sha256=digest.sha256)

    def read(self, name: str) -> tuple[bytes, str]:
        try:
            body = self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{name}: not in the archive") from exc
        except OSError as exc:
            raise ArchiveUnavailable(f"archive folder {self.storage.location}: {exc}") from exc
        return body, Digest.of(body).md5


def archive_for(storage: Storage) -> Archive:
    """The archive behind a Django storage; only stores that can refuse to overwrite are accepted."""
    from storages.backends.s3 import S3Storage  # imports boto3: only when an archive is actually used

    if isinstance(storage, S3Storage):
        return S3Archive(storage)
    if isinstance(storage, FileSystemStorage):
        return FileSystemArchive(storage)
    raise ImproperlyConfigured(
        f"STORAGES['archive'] is a {type(storage).__name__}; the upload supports S3Storage and FileSystemStorage "
        "because it needs create-only writes and conditional replaces."
    )


def configured_archive() -> Archive:
    """The archive from the current STORAGES setting (Django rebuilds storages when the setting changes)."""
    return archive_for(storages["archive"])


# --- The upload procedure ------------------------------------------------------------------------------------

CREATED = "created"
PRESENT = "present"
MERGED = "merged"


@dataclass(frozen=True)
class StoreResult:
    """How an hour file reached the archive, and what the archive now holds for that hour."""

    outcome: str  # CREATED, PRESENT (the stored object already held every line) or MERGED
    content: bytes  # the archived lines, uncompressed
    stored: Digest  # the stored object's bytes (gzipped when gzip is on)
    gzipped: bool = False

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the archived lines (the stored bytes' own unless they are gzipped)."""
        return hashlib.sha256(self.content).hexdigest() if self.gzipped else self.stored.sha256


def verify(archive: Archive, name: str, expected: Digest, answer_md5: str | None = None, head: bool = False) -> None:
    """Raise VerificationFailed unless the stored object has the expected size and checksums.

    ``answer_md5`` is the MD5 the archive's write answer reported (S3: the PUT's ETag). A PUT with Content-MD5
    only succeeds when the server computed that same MD5 over the bytes it received, so an answer equal to ours
    verifies the object (size included: those are exactly our bytes) without asking again; a HEAD would only
    read back the ETag recorded by that same PUT. Without such an answer, or with ``head``, ``stat`` is asked.
    """
    if answer_md5 is not None:
        if answer_md5 != expected.md5:
            raise VerificationFailed(f"{name}: stored MD5 {answer_md5} differs from the MD5 sent {expected.md5}")
        if not head:
            return
    stored = archive.stat(name)
    if stored.size != expected.size:
        raise VerificationFailed(f"{name}: stored {stored.size} bytes, sent {expected.size}")
    if stored.md5 is None and stored.sha256 is None:
        raise VerificationFailed(f"{name}: the archive reports no checksum to verify against")
    if stored.md5 is not None and stored.md5 != expected.md5:
        raise VerificationFailed(f"{name}: stored MD5 {stored.md5} differs from the MD5 sent {expected.md5}")
    if stored.sha256 is not None and stored.sha256 != expected.sha256:
        raise VerificationFailed(f"{name}: stored SHA-256 differs from the one sent")


def store_verified(
    archive: Archive, name: str, content: bytes, use_gzip: bool = False, verify_with_head: bool = False
) -> StoreResult:
    """Put one hour file's lines under ``name`` without ever overwriting other data blindly (see the module doc).

    ``verify_with_head``: also ask the archive for the stored object's size and checksums after a write whose
    answer already confirmed its MD5 (ARCHIVE_VERIFY_WITH_HEAD).
    """
    encoding = "gzip" if use_gzip else None
    body = hour_content.encode(content, use_gzip)
    digest = Digest.of(body)
    try:
        answer = archive.create(name, body, digest, encoding)
    except ObjectExists:
        pass
    else:
        verify(archive, name, digest, answer, head=verify_with_head)
        return StoreResult(outcome=CREATED, content=content, stored=digest, gzipped=use_gzip)

    for _round in range(MAX_MERGE_ROUNDS):
        try:
            stored_body, version = archive.read(name)
        except ObjectMissing:
            # Deleted between our create and our read: a plain create again is the right move.
            try:
                answer = archive.create(name, body, digest, encoding)
            except ObjectExists:
                continue
            verify(archive, name, digest, answer, head=verify_with_head)
            return StoreResult(outcome=CREATED, content=content, stored=digest, gzipped=use_gzip)
        try:
            existing = hour_content.decode(stored_body)
        except hour_content.UnreadableObject as exc:
            raise ArchiveError(f"{name}: the stored object is {exc}") from exc
        if hour_content.holds_all(existing, content):
            return StoreResult(
                outcome=PRESENT, content=existing, stored=Digest.of(stored_body), gzipped=stored_body != existing
            )
        merged = hour_content.merge(existing, content)
        merged_body = hour_content.encode(merged, use_gzip)
        merged_digest = Digest.of(merged_body)
        try:
            answer = archive.replace(name, merged_body, merged_digest, encoding, if_match=version)
        except ObjectChanged:
            log.info("%s changed while merging; reading it again", name)
            continue
        verify(archive, name, merged_digest, answer, head=verify_with_head)
        log.warning("%s held different lines; stored the merge of both", name)
        return StoreResult(outcome=MERGED, content=merged, stored=merged_digest, gzipped=use_gzip)
    raise ArchiveError(f"{name}: still changing after {MAX_MERGE_ROUNDS} merge attempts")
