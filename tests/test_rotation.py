"""The hourly upload against a real S3 server (SeaweedFS on loopback) and the local-folder default.

Runs use worker threads with their own database connections, so these tests use ``transactional_db``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import time
from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone

from loggerapp.hourfiles.content import merge
from loggerapp.hourfiles.layout import hour_start
from loggerapp.models import HourFile
from loggerapp.rotation.archive import (
    Digest,
    FileSystemArchive,
    S3Archive,
    VerificationFailed,
    store_verified,
    verify,
)
from loggerapp.rotation.job import run_rotation
from tests.fixtures.core import manage_command, subprocess_env
from tests.fixtures.s3 import hour_content, reading_line

pytestmark = pytest.mark.django_db(transaction=True)

NOW = hour_start(timezone.now())
H1 = NOW - timedelta(hours=1)  # the last finished hour
H2 = NOW - timedelta(hours=2)
H3 = NOW - timedelta(hours=3)


def key(cloud_id: str, hour) -> str:
    return f"rainforest-logs/{cloud_id}/{hour:%Y/%m/%d}/iseif-rainforest-{cloud_id}-{hour:%Y-%m-%d-%H}.jl"


@pytest.fixture(autouse=True)
def rotation_settings(settings, log_root):
    settings.ROTATION_GRACE_SECONDS = 0
    settings.ARCHIVE_CONCURRENCY = 4
    settings.ARCHIVE_GZIP = False
    settings.ARCHIVE_PREFIX = "rainforest-logs"
    settings.ROTATION_MAX_ARCHIVE_ERRORS = 20
    settings.ROTATION_CLAIM_LEASE_SECONDS = 120
    return settings


def test_uploads_to_the_exact_keys_verified_then_deletes(s3_archive, write_hour_file, make_household, log_root):
    household = make_household("002506")
    paths = {
        ("002506", H1): write_hour_file("002506", H1, lines=600, failed_every=10),
        ("00ab12", H1): write_hour_file("00ab12", H1, lines=300),
        ("002506", H2): write_hour_file("002506", H2, lines=5),
    }
    contents = {name: path.read_bytes() for name, path in paths.items()}

    summary = run_rotation()

    assert summary.count("uploaded") == 3 and summary.failed == 0
    assert s3_archive.keys() == sorted(key(cloud_id, hour) for cloud_id, hour in paths)
    for (cloud_id, hour), content in contents.items():
        head = s3_archive.client.head_object(Bucket=s3_archive.bucket, Key=key(cloud_id, hour))
        assert head["ContentLength"] == len(content)
        assert head["ETag"].strip('"') == hashlib.md5(content).hexdigest()  # noqa: S324
        assert head["Metadata"]["sha256"] == hashlib.sha256(content).hexdigest()
        assert head["ContentType"] == "application/x-ndjson"
        assert s3_archive.get(key(cloud_id, hour)) == content
        assert not paths[(cloud_id, hour)].exists()
    assert sorted(p.name for p in log_root.iterdir()) == []  # empty hour directories removed

    row = HourFile.objects.get(cloud_id="002506", hour=H1)
    assert row.state == HourFile.State.UPLOADED
    assert row.household == household
    assert (row.lines, row.ok_lines) == (600, 540)
    assert row.bytes == row.stored_bytes == len(contents[("002506", H1)])
    assert row.sha256 == hashlib.sha256(contents[("002506", H1)]).hexdigest()
    assert row.key == key("002506", H1)
    assert row.attempts == 1 and row.uploaded_at is not None and not row.merged and row.reason == ""
    assert row.coverage == pytest.approx(0.9)
    assert HourFile.objects.get(cloud_id="00ab12", hour=H1).household is None  # kept without a household


def test_never_touches_the_current_hour_nor_one_within_grace(s3_archive, write_hour_file, settings):
    settings.ROTATION_GRACE_SECONDS = 120
    current = write_hour_file("002506", NOW, lines=10)
    last = write_hour_file("002506", H1, lines=10)
    for path in (current, last):
        os.utime(path, (time.time() - 600, time.time() - 600))  # closed long ago, as far as mtime can tell

    early = run_rotation(now=NOW + timedelta(seconds=60))  # one minute into the hour: H1 still in its grace
    assert early.files == 0 and s3_archive.keys() == [] and HourFile.objects.count() == 0
    only_current = run_rotation(hour=NOW, now=NOW + timedelta(minutes=59))
    assert only_current.files == 0

    later = run_rotation(now=NOW + timedelta(minutes=5))
    assert later.count("uploaded") == 1
    assert s3_archive.keys() == [key("002506", H1)]
    assert current.exists() and current.read_bytes() == hour_content("002506", NOW, 10)
    assert not last.exists()


def test_a_file_still_being_written_waits_for_the_next_run(s3_archive, write_hour_file, settings):
    settings.ROTATION_GRACE_SECONDS = 300
    path = write_hour_file("002506", H3, lines=10)  # modified just now, although its hour ended long ago
    assert run_rotation().files == 0 and path.exists()
    old = time.time() - 600
    os.utime(path, (old, old))
    assert run_rotation().count("uploaded") == 1 and not path.exists()


def test_hour_option_limits_the_run(s3_archive, write_hour_file):
    write_hour_file("002506", H1, lines=3)
    older = write_hour_file("002506", H2, lines=3)
    summary = run_rotation(hour=H1)
    assert summary.count("uploaded") == 1 and older.exists()
    assert s3_archive.keys() == [key("002506", H1)]


@pytest.mark.parametrize("fault", ["wrong_secret", "missing_bucket"])
def test_refused_upload_keeps_the_file_and_records_why(s3_archive, write_hour_file, settings, fault):
    path = write_hour_file("002506", H1, lines=20)
    archive = dict(settings.STORAGES["archive"])
    options = dict(archive["OPTIONS"])
    if fault == "wrong_secret":
        options["secret_key"] = "not-the-secret"
    else:
        options["bucket_name"] = "no-such-bucket-here"
    settings.STORAGES = {**settings.STORAGES, "archive": {**archive, "OPTIONS": options}}

    summary = run_rotation()

    assert summary.failed == 1 and path.exists()
    row = HourFile.objects.get(cloud_id="002506", hour=H1)
    assert row.state == HourFile.State.FAILED and row.attempts == 1
    assert ("SignatureDoesNotMatch" if fault == "wrong_secret" else "NoSuchBucket") in row.reason
    assert "not-the-secret" not in row.reason
    assert s3_archive.keys() == []

    settings.STORAGES = {**settings.STORAGES, "archive": archive}  # fixed: the next run retries
    retry = run_rotation()
    assert retry.count("uploaded") == 1 and not path.exists()
    row.refresh_from_db()
    assert row.state == HourFile.State.UPLOADED and row.attempts == 2 and row.reason == ""


def test_backlog_after_an_outage_goes_up_in_one_run(s3_archive, write_hour_file, settings):
    settings.ROTATION_MAX_ARCHIVE_ERRORS = 2
    paths = [write_hour_file(cloud_id, hour, lines=30) for hour in (H1, H2, H3) for cloud_id in ("002506", "00ab12")]
    s3_archive.server.stop()
    try:
        down = run_rotation(concurrency=1)
    finally:
        s3_archive.server.start()
    # The first two failures open the breaker: the other files are left for the next run, untouched.
    assert down.failed == 2 and down.count("deferred") == 4
    assert all(path.exists() for path in paths)
    failed = HourFile.objects.filter(state=HourFile.State.FAILED)
    assert failed.count() == 2 and all("unreachable" in row.reason for row in failed)

    up = run_rotation()
    assert up.count("uploaded") == 6 and up.failed == 0
    assert not any(path.exists() for path in paths)
    assert len(s3_archive.keys()) == 6
    assert HourFile.objects.filter(state=HourFile.State.UPLOADED).count() == 6


def test_different_object_at_the_key_is_merged_not_overwritten(s3_archive, write_hour_file):
    start = H1.timestamp()
    stored = b"".join(reading_line("002506", start + i * 6) for i in (0, 2, 4, 5))  # another host's lines
    ours = b"".join(reading_line("002506", start + i * 6) for i in (1, 2, 3, 5, 6))  # 2 and 5 in both
    s3_archive.client.put_object(Bucket=s3_archive.bucket, Key=key("002506", H1), Body=stored)
    path = write_hour_file("002506", H1, content=ours)

    summary = run_rotation()

    assert summary.count("merged") == 1 and not path.exists()
    merged = s3_archive.get(key("002506", H1))
    assert merged == b"".join(reading_line("002506", start + i * 6) for i in range(7))
    head = s3_archive.client.head_object(Bucket=s3_archive.bucket, Key=key("002506", H1))
    assert head["ETag"].strip('"') == hashlib.md5(merged).hexdigest()  # noqa: S324
    row = HourFile.objects.get(cloud_id="002506", hour=H1)
    assert row.merged and row.lines == 7 and row.bytes == len(merged)
    assert row.sha256 == hashlib.sha256(merged).hexdigest()


def test_identical_object_counts_as_done_without_rewriting(s3_archive, write_hour_file):
    content = hour_content("002506", H1, 40)
    s3_archive.client.put_object(Bucket=s3_archive.bucket, Key=key("002506", H1), Body=content)
    before = s3_archive.client.head_object(Bucket=s3_archive.bucket, Key=key("002506", H1))
    path = write_hour_file("002506", H1, content=content)

    summary = run_rotation()

    assert summary.count("present") == 1 and not path.exists()
    after = s3_archive.client.head_object(Bucket=s3_archive.bucket, Key=key("002506", H1))
    assert after["LastModified"] == before["LastModified"] and after["ETag"] == before["ETag"]
    assert HourFile.objects.get(cloud_id="002506", hour=H1).state == HourFile.State.UPLOADED


class CorruptingArchive(FileSystemArchive):
    """A folder that loses the last byte of every object it stores (a failing disk)."""

    def create(self, name, body, digest, content_encoding):
        super().create(name, body[:-1], digest, content_encoding)


def test_file_is_deleted_only_after_verification(folder_archive, write_hour_file):
    path = write_hour_file("002506", H1, lines=10)
    summary = run_rotation(archive=CorruptingArchive(storages["archive"]))
    assert summary.failed == 1 and path.exists()
    row = HourFile.objects.get(cloud_id="002506", hour=H1)
    assert row.state == HourFile.State.FAILED and "stored" in row.reason and "sent" in row.reason


def test_verify_compares_size_and_checksums(s3_archive):
    from loggerapp.rotation.archive import configured_archive

    archive = configured_archive()
    body = b'{"ok": true}\n'
    result = store_verified(archive, "x/one.jl", body)
    assert result.outcome == "created"
    verify(archive, "x/one.jl", Digest.of(body))
    with pytest.raises(VerificationFailed):
        verify(archive, "x/one.jl", Digest.of(body + b"\n"))
    with pytest.raises(VerificationFailed):
        verify(archive, "x/one.jl", Digest.of(body.replace(b"true", b"fals")))


class CorruptedInTransitS3Archive(S3Archive):
    """The real S3 archive, sending the body without its last byte (a broken proxy, a bad NIC, a bug in a layer):
    with ``consistent_md5`` the Content-MD5 sent is that of the corrupted body, so only the answer's ETag can tell."""

    def __init__(self, storage, consistent_md5: bool):
        super().__init__(storage)
        self.consistent_md5 = consistent_md5

    def _put(self, name, body, digest, content_encoding, **condition):
        corrupted = body[:-1]
        return super()._put(name, corrupted, Digest.of(corrupted) if self.consistent_md5 else digest, None, **condition)


@pytest.mark.parametrize("consistent_md5", [False, True])
def test_the_puts_answer_verifies_and_a_corrupted_upload_is_never_deleted(s3_archive, write_hour_file, consistent_md5):
    path = write_hour_file("002506", H1, lines=10)
    summary = run_rotation(archive=CorruptedInTransitS3Archive(storages["archive"], consistent_md5))
    assert summary.failed == 1 and path.exists()
    row = HourFile.objects.get(cloud_id="002506", hour=H1)
    assert row.state == HourFile.State.FAILED
    if consistent_md5:  # the server stored what it got; its ETag differs from the MD5 of our bytes
        assert "differs from the MD5 sent" in row.reason
        assert s3_archive.keys() == [key("002506", H1)]
    else:  # the server checked Content-MD5 itself and refused the body
        assert "BadDigest" in row.reason or "InvalidDigest" in row.reason, row.reason
        assert s3_archive.keys() == []


def count_requests(archive, operation: str) -> list[str]:
    """Names of the objects ``operation`` (e.g. HeadObject) was sent for, seen on the archive's own boto3 client."""
    seen: list[str] = []
    archive._client.meta.events.register(f"before-call.s3.{operation}", lambda params, **_: seen.append(operation))
    return seen


@pytest.mark.parametrize("with_head", [False, True])
def test_verification_needs_no_second_request_unless_asked(s3_archive, write_hour_file, settings, with_head):
    from loggerapp.rotation.archive import configured_archive

    settings.ARCHIVE_VERIFY_WITH_HEAD = with_head
    for cloud_id in ("002506", "00ab12"):
        write_hour_file(cloud_id, H1, lines=10)
    archive = configured_archive()
    heads, puts = count_requests(archive, "HeadObject"), count_requests(archive, "PutObject")
    assert run_rotation(archive=archive).count("uploaded") == 2
    assert (len(puts), len(heads)) == (2, 2 if with_head else 0)


def test_local_folder_default_uses_the_same_layout_and_rules(folder_archive, write_hour_file, log_root):
    content = hour_content("002506", H1, 12)
    write_hour_file("002506", H1, content=content)
    write_hour_file("00ab12", H2, lines=3)

    summary = run_rotation()

    assert summary.count("uploaded") == 2
    assert (folder_archive / key("002506", H1)).read_bytes() == content
    assert (folder_archive / key("00ab12", H2)).exists()
    assert not any(p.name.endswith(".tmp") for p in folder_archive.rglob("*"))
    assert list(log_root.iterdir()) == []

    # A second host's file for the same hour is merged into the existing one, never overwriting it.
    start = H1.timestamp()
    late = reading_line("002506", start + 3)
    write_hour_file("002506", H1, content=late)
    assert run_rotation().count("merged") == 1
    stored = (folder_archive / key("002506", H1)).read_bytes()
    assert stored.count(b"\n") == 13 and late in stored
    assert merge(content, late) == stored


def test_folder_archive_create_is_create_only_and_replace_is_conditional(folder_archive):
    from loggerapp.rotation.archive import ObjectChanged, ObjectExists, configured_archive

    archive = configured_archive()
    archive.create("a/b.jl", b"one\n", Digest.of(b"one\n"), None)
    with pytest.raises(ObjectExists):
        archive.create("a/b.jl", b"two\n", Digest.of(b"two\n"), None)
    body, version = archive.read("a/b.jl")
    assert body == b"one\n"
    archive.replace("a/b.jl", b"three\n", Digest.of(b"three\n"), None, if_match=version)
    with pytest.raises(ObjectChanged):  # the version read before is stale now
        archive.replace("a/b.jl", b"four\n", Digest.of(b"four\n"), None, if_match=version)
    assert (folder_archive / "a/b.jl").read_bytes() == b"three\n"


def test_gzip_option(s3_archive, write_hour_file, settings):
    settings.ARCHIVE_GZIP = True
    content = hour_content("002506", H1, 600)
    path = write_hour_file("002506", H1, content=content)

    assert run_rotation().count("uploaded") == 1 and not path.exists()

    gz_key = key("002506", H1) + ".gz"
    assert s3_archive.keys() == [gz_key]
    head = s3_archive.client.head_object(Bucket=s3_archive.bucket, Key=gz_key)
    body = s3_archive.get(gz_key)
    assert head["ContentEncoding"] == "gzip" and head["ContentType"] == "application/x-ndjson"
    assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324  (verified on the stored bytes)
    assert gzip.decompress(body) == content
    row = HourFile.objects.get()
    assert row.key == gz_key and row.bytes == len(content) and row.stored_bytes == len(body) < len(content) // 4

    # A rerun with the same lines finds them present in the gzipped object.
    write_hour_file("002506", H1, content=content)
    assert run_rotation().count("present") == 1


def test_claims_one_winner_and_dead_claims_are_taken(db):
    from loggerapp.rotation import ledger

    row = HourFile.objects.create(cloud_id="002506", hour=H1)
    seen_by_a = HourFile.objects.get(pk=row.pk)
    seen_by_b = HourFile.objects.get(pk=row.pk)
    assert ledger.claim(seen_by_a, "run-a")
    assert not ledger.claim(seen_by_b, "run-b")  # same version read: the loser moves on
    fresh = HourFile.objects.get(pk=row.pk)
    assert not ledger.claim(fresh, "run-b")  # held by a run not judged dead
    assert ledger.claim(fresh, "run-b", dead_owners={"run-a"})
    taken = HourFile.objects.get(pk=row.pk)
    assert taken.claimed_by == "run-b" and taken.attempts == 2
    assert not ledger.mark_failed(seen_by_a, "run-a", "too late")  # run-a lost its claim

    # A renewal moves the version: a run that judged run-b dead from an older snapshot leaves it alone.
    assert ledger.renew("run-b", now=timezone.now() + timedelta(seconds=1)) == 1
    assert not ledger.claim(taken, "run-c", dead_owners={"run-b"})

    # A run that saw the row while run-b held it cannot claim it once run-b is done (nor put it back later).
    seen_during_claim = HourFile.objects.get(pk=row.pk)
    assert ledger.mark_failed(seen_during_claim, "run-b", "refused")
    assert not ledger.claim(seen_during_claim, "run-c", dead_owners={"run-b"})
    assert HourFile.objects.get(pk=row.pk).state == HourFile.State.FAILED


def test_a_batch_claim_takes_exactly_the_free_rows(db):
    from loggerapp.rotation import ledger

    rows = [HourFile.objects.create(cloud_id=f"00000{n}", hour=H1) for n in range(5)]
    snapshot = list(HourFile.objects.filter(pk__in=[row.pk for row in rows]).order_by("cloud_id"))
    assert ledger.claim(snapshot[1], "run-a") and ledger.claim(snapshot[2], "run-dead")
    assert ledger.claim_batch(snapshot, "run-b") == {snapshot[0].pk, snapshot[3].pk, snapshot[4].pk}
    again = list(HourFile.objects.filter(pk__in=[row.pk for row in rows]).order_by("cloud_id"))
    assert ledger.claim_batch(again, "run-c", dead_owners={"run-dead"}) == {snapshot[2].pk}
    assert ledger.release_batch([again[2]], "run-c") == 1
    restored = HourFile.objects.get(pk=snapshot[2].pk)
    assert (restored.state, restored.attempts, restored.claimed_by) == (HourFile.State.UPLOADING, 1, "")
    assert ledger.claim_batch([restored], "run-d") == {restored.pk}  # an unowned claim is free


def test_two_concurrent_runs_never_upload_the_same_file(s3_archive, write_hour_file, log_root):
    expected = set()
    for i in range(150):
        cloud_id = f"{i:06x}"
        write_hour_file(cloud_id, H1, lines=60)
        expected.add(key(cloud_id, H1))
    env = subprocess_env(
        LOG_ROOT=str(log_root), ROTATION_GRACE_SECONDS="0", ARCHIVE_CONCURRENCY="3", **s3_archive.env()
    )
    runs = [
        subprocess.Popen(
            manage_command("rotate_logs", "--json"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    summaries = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]

    assert all(summary["files"] > 0 for summary in summaries)  # both runs saw the hour's files: they overlapped
    uploaded = sum(summary["counts"].get("uploaded", 0) for summary in summaries)
    assert uploaded == 150
    assert all(summary["counts"].get("present", 0) == 0 for summary in summaries)  # no file was sent twice
    assert set(s3_archive.keys()) == expected
    assert set(HourFile.objects.values_list("attempts", flat=True)) == {1}
    assert set(HourFile.objects.values_list("state", flat=True)) == {HourFile.State.UPLOADED}
    log_text = (log_root / "rotate" / "rotate.log").read_text()
    assert log_text.count("rotated ") == 2  # each run's summary line reached rotate/rotate.log


def test_dry_run_lists_and_changes_nothing(s3_archive, write_hour_file, log_root):
    path = write_hour_file("002506", H1, lines=5)
    result = subprocess.run(
        manage_command("rotate_logs", "--dry-run"),
        env=subprocess_env(LOG_ROOT=str(log_root), ROTATION_GRACE_SECONDS="0", **s3_archive.env()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert key("002506", H1) in result.stdout and "ledger: new" in result.stdout
    assert path.exists() and s3_archive.keys() == [] and HourFile.objects.count() == 0


def test_bad_hour_option_is_refused(log_root):
    result = subprocess.run(
        manage_command("rotate_logs", "--hour", "2026-13-01"),
        env=subprocess_env(LOG_ROOT=str(log_root)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "YYYY-MM-DD-HH" in result.stderr


class LateWriterArchive(FileSystemArchive):
    """A real folder archive; while the object is being stored the pinger appends a late line to the local file."""

    def __init__(self, storage, local_path, late_line):
        super().__init__(storage)
        self.local_path, self.late_line = local_path, late_line

    def create(self, name, body, digest, content_encoding):
        with open(self.local_path, "ab") as handle:
            handle.write(self.late_line)
        super().create(name, body, digest, content_encoding)


def test_a_line_appended_during_the_upload_is_never_deleted(folder_archive, write_hour_file):
    start = H1.timestamp()
    path = write_hour_file("002506", H1, lines=10)
    late = reading_line("002506", start + 3599.5)
    summary = run_rotation(archive=LateWriterArchive(storages["archive"], path, late))
    assert summary.count("uploaded") == 1
    assert path.exists() and path.read_bytes().endswith(late)  # the late line was not uploaded: the file stays

    again = run_rotation()  # the next run finds the hour uploaded and merges the new line
    assert again.count("merged") == 1 and not path.exists()
    stored = (folder_archive / key("002506", H1)).read_bytes()
    assert late in stored and stored.count(b"\n") == 11
    assert HourFile.objects.get(cloud_id="002506", hour=H1).lines == 11


class ConnectionKillingArchive(FileSystemArchive):
    """A real folder archive; during the first upload the worker's PostgreSQL session is terminated (a database
    restart, a failover), so recording that file in the ledger fails."""

    def __init__(self, storage):
        super().__init__(storage)
        self.killed = False

    def create(self, name, body, digest, content_encoding):
        from django.db import DatabaseError, connection

        if not self.killed:
            self.killed = True
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            except DatabaseError:
                pass
        super().create(name, body, digest, content_encoding)


def test_a_lost_database_connection_is_survived_and_every_upload_recorded(folder_archive, write_hour_file):
    paths = [write_hour_file(f"00ab1{n}", H1, lines=5) for n in range(4)]
    summary = run_rotation(archive=ConnectionKillingArchive(storages["archive"]), concurrency=1)
    # The record that found its connection gone was written again on a new one.
    assert summary.failed == 0 and summary.count("uploaded") == 4
    assert not any(path.exists() for path in paths)
    assert set(HourFile.objects.values_list("state", flat=True)) == {HourFile.State.UPLOADED}


@pytest.fixture
def ledger_refusing_uploads_of():
    """A real PostgreSQL trigger that refuses to record one household's file as uploaded (a failing ledger)."""
    from django.db import connection

    def install(cloud_id: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION test_refuse_upload() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.cloud_id = '{cloud_id}' AND NEW.state = 'uploaded' THEN "
                "RAISE EXCEPTION 'ledger refuses %', NEW.cloud_id; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_upload BEFORE UPDATE ON loggerapp_hourfile "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_upload()"
            )

    def remove() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_upload ON loggerapp_hourfile")
            cursor.execute("DROP FUNCTION IF EXISTS test_refuse_upload()")

    install.remove = remove
    yield install
    remove()


def test_a_ledger_that_refuses_a_record_keeps_that_file_and_the_run_goes_on(
    folder_archive, write_hour_file, ledger_refusing_uploads_of
):
    paths = [write_hour_file(f"00ab1{n}", H1, lines=5) for n in range(4)]
    ledger_refusing_uploads_of("00ab11")
    summary = run_rotation(concurrency=1)
    assert summary.failed == 1 and summary.count("uploaded") == 3
    assert [path.exists() for path in paths] == [False, True, False, False]  # not recorded: not deleted
    failed = HourFile.objects.get(state=HourFile.State.FAILED)  # recorded as failed: retried by the next run
    assert failed.cloud_id == "00ab11" and "ledger refuses" in failed.reason

    ledger_refusing_uploads_of.remove()
    retry = run_rotation()
    assert retry.count("present") == 1 and not any(path.exists() for path in paths)
    assert set(HourFile.objects.values_list("state", flat=True)) == {HourFile.State.UPLOADED}


def test_the_embedded_sqlite_ledger_takes_every_thread_at_once(write_hour_file, log_root, tmp_path):
    """The embedded default (SQLite, a local archive folder) with 16 threads claiming and recording at once: SQLite
    allows one writer, so every ledger transaction must take its write lock first instead of upgrading a read."""
    paths = [write_hour_file(f"{i:06x}", H1, lines=3) for i in range(1, 241)]
    env = subprocess_env(
        DATABASE_URL="", DATA_DIR=str(tmp_path / "data"), LOG_ROOT=str(log_root), ROTATION_GRACE_SECONDS="0",
        ARCHIVE_CONCURRENCY="16", AWS_STORAGE_BUCKET_NAME="",
    )  # fmt: skip
    for command in (("migrate", "-v", "0"), ("rotate_logs", "--json")):
        result = subprocess.run(manage_command(*command), env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["counts"] == {"uploaded": 240}
    assert not any(path.exists() for path in paths)
    assert len(list((tmp_path / "data" / "archive").rglob("*.jl"))) == 240


def price_key(cloud_id: str, hour) -> str:
    return f"rainforest-logs/{cloud_id}/{hour:%Y/%m/%d}/iseif-rainforest-price-{cloud_id}-{hour:%Y-%m-%d-%H}.jl"


def test_price_files_are_uploaded_verified_and_deleted_beside_the_demand_files(
    s3_archive, write_hour_file, write_price_file, make_household, log_root
):
    """The second kind of hour file (issue 14): same folder, its own key and ledger row; the demand file's key,
    bytes and coverage are as before."""
    make_household("002506")
    demand = write_hour_file("002506", H1, lines=600)
    price = write_price_file("002506", H1, lines=60, failed_every=10)
    demand_content, price_content = demand.read_bytes(), price.read_bytes()

    summary = run_rotation()

    assert summary.count("uploaded") == 2 and summary.failed == 0
    assert s3_archive.keys() == sorted([key("002506", H1), price_key("002506", H1)])
    assert s3_archive.get(key("002506", H1)) == demand_content
    assert s3_archive.get(price_key("002506", H1)) == price_content
    assert not demand.exists() and not price.exists()
    rows = {row.kind: row for row in HourFile.objects.filter(cloud_id="002506", hour=H1)}
    assert set(rows) == {"demand", "price"}
    assert rows["demand"].key == key("002506", H1) and rows["demand"].ok_lines == 600
    assert rows["price"].key == price_key("002506", H1)
    assert (rows["price"].lines, rows["price"].ok_lines) == (60, 54)
    assert all(row.state == HourFile.State.UPLOADED for row in rows.values())


def test_a_price_file_not_yet_uploaded_is_in_the_backlog(write_hour_file, write_price_file, log_root):
    from loggerapp.rotation.backlog import upload_backlog

    write_price_file("002506", H2, lines=3)
    backlog = upload_backlog(before=NOW)
    assert backlog.unrecorded == 1 and backlog.oldest_unrecorded == H2
