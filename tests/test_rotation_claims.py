"""Claims left by a dead upload run are taken at once; a live run's claims are skipped, and every skip says why.

The end-to-end test kills a real ``rotate_logs`` with SIGKILL in the middle of its run against a real SeaweedFS,
then runs another one.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from loggerapp.hourfiles.layout import hour_start
from loggerapp.models import HourFile
from loggerapp.rotation.claims import RunIdentity, judge, process_start
from loggerapp.rotation.job import run_rotation
from tests.fixtures.core import manage_command, subprocess_env

NOW = hour_start(timezone.now())
H1 = NOW - timedelta(hours=1)
H2 = NOW - timedelta(hours=2)
LEASE = timedelta(seconds=120)
State = HourFile.State


def key(cloud_id: str, hour) -> str:
    return f"rainforest-logs/{cloud_id}/{hour:%Y/%m/%d}/iseif-rainforest-{cloud_id}-{hour:%Y-%m-%d-%H}.jl"


@pytest.fixture(autouse=True)
def rotation_settings(settings, log_root):
    settings.ROTATION_GRACE_SECONDS = 0
    settings.ARCHIVE_CONCURRENCY = 4
    settings.ARCHIVE_GZIP = False
    settings.ARCHIVE_PREFIX = "rainforest-logs"
    settings.ROTATION_CLAIM_LEASE_SECONDS = 120
    return settings


# --- Judging a claimant (real processes, no database) ---------------------------------------------------------


def finished_process() -> tuple[int, str]:
    """The PID and start time of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    start = process_start(child.pid)
    child.wait()
    assert start is not None
    return child.pid, start


def test_identity_round_trips_and_old_claims_are_not_parsed():
    here = RunIdentity.of_this_process()
    assert RunIdentity.parse(str(here)) == here
    assert here.pid == os.getpid() and here.start == process_start(os.getpid()) and here.space
    assert len(str(here)) <= HourFile._meta.get_field("claimed_by").max_length
    assert RunIdentity.parse("oldhost:1234:9f3a2b1c") is None  # what the code before wrote
    assert RunIdentity.parse("") is None


def test_a_run_on_this_host_is_alive_exactly_while_its_process_is():
    here = RunIdentity.of_this_process()
    now = timezone.now()
    parent = os.getppid()
    alive = RunIdentity(here.host, here.space, parent, process_start(parent) or "", "aaaa0000")
    verdict = judge(str(alive), here, last_renewed=now - timedelta(days=1), now=now, lease=LEASE)
    assert not verdict.dead and f"process {parent}" in verdict.why  # alive however old its lease

    pid, start = finished_process()
    gone = RunIdentity(here.host, here.space, pid, start, "bbbb0000")
    verdict = judge(str(gone), here, last_renewed=now, now=now, lease=LEASE)
    assert verdict.dead and f"process {pid} on this host is gone" in verdict.why  # dead however fresh its lease

    reused = RunIdentity(here.host, here.space, parent, "1", "cccc0000")  # that PID, but started at another time
    verdict = judge(str(reused), here, last_renewed=now, now=now, lease=LEASE)
    assert verdict.dead and "another process" in verdict.why


@pytest.mark.parametrize(
    "owner",
    [
        "otherhost:0123456789:4242:777:dddd0000",  # another host of a fleet
        "{host}:fedcba9876:4242:777:eeee0000",  # this host name, another PID namespace (a container)
        "{host}:4242:ffff0000",  # written by the code before this one
    ],
)
def test_a_run_elsewhere_is_alive_while_it_renews_its_lease(owner):
    here = RunIdentity.of_this_process()
    owner = owner.format(host=here.host)
    now = timezone.now()
    fresh = judge(owner, here, last_renewed=now - timedelta(seconds=100), now=now, lease=LEASE)
    assert not fresh.dead and "renewed its lease 100 s ago" in fresh.why
    expired = judge(owner, here, last_renewed=now - timedelta(seconds=121), now=now, lease=LEASE)
    assert expired.dead and "has not renewed its lease for 121 s" in expired.why


# --- Runs meeting claims ---------------------------------------------------------------------------------------


def claimed_rows(cloud_ids, owner: str, claimed_at) -> None:
    for cloud_id in cloud_ids:
        HourFile.objects.create(
            cloud_id=cloud_id, hour=H1, key=key(cloud_id, H1), state=State.UPLOADING, attempts=1,
            claimed_by=owner, claimed_at=claimed_at,
        )  # fmt: skip


def test_a_live_runs_files_are_skipped_with_a_warning_that_says_why(
    s3_archive, write_hour_file, caplog, transactional_db
):
    owner = "otherhost:0123456789:4242:777:dddd0000"
    paths = [write_hour_file(cloud_id, H1, lines=5) for cloud_id in ("00ab10", "00ab11", "00ab12")]
    claimed_rows(["00ab10", "00ab11"], owner, timezone.now() - timedelta(seconds=30))

    with caplog.at_level(logging.WARNING, logger="loggerapp.rotation"):
        summary = run_rotation()

    assert summary.count("skipped") == 2 and summary.count("uploaded") == 1
    assert [path.exists() for path in paths] == [True, True, False]
    [skipped] = summary.skipped
    assert skipped["files"] == 2 and owner in skipped["reason"] and "renewed its lease" in skipped["reason"]
    assert skipped["first"] == [key("00ab10", H1), key("00ab11", H1)]
    warning = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped 2 files"))
    assert owner in warning and key("00ab10", H1) in warning
    assert summary.taken_over == []


def test_an_expired_lease_is_taken_over_with_a_warning(s3_archive, write_hour_file, caplog, transactional_db):
    owner = "otherhost:0123456789:4242:777:dddd0000"
    paths = [write_hour_file(cloud_id, H1, lines=5) for cloud_id in ("00ab10", "00ab11")]
    claimed_rows(["00ab10", "00ab11"], owner, timezone.now() - timedelta(seconds=121))

    with caplog.at_level(logging.WARNING, logger="loggerapp.rotation"):
        summary = run_rotation()

    assert summary.count("uploaded") == 2 and not any(path.exists() for path in paths)
    [taken] = summary.taken_over
    assert taken["run"] == owner and taken["files"] == 2 and "has not renewed its lease" in taken["why"]
    assert any("taking over 2 files claimed by run " + owner in r.getMessage() for r in caplog.records)
    assert set(HourFile.objects.values_list("attempts", flat=True)) == {2}


def test_a_long_run_renews_its_lease(s3_archive, write_hour_file, settings, transactional_db):
    """A run slower than its lease stays alive to the others: its claims are stamped again while it works."""
    from django.core.files.storage import storages

    from loggerapp.rotation.archive import S3Archive

    settings.ROTATION_CLAIM_LEASE_SECONDS = 1  # renewed every 0.25 s
    seen: list = []

    class SlowArchive(S3Archive):
        def create(self, name, body, digest, content_encoding):
            first = HourFile.objects.get(cloud_id="00ab10").claimed_at
            time.sleep(1.2)
            seen.append((first, HourFile.objects.get(cloud_id="00ab10").claimed_at))
            return super().create(name, body, digest, content_encoding)

    write_hour_file("00ab10", H1, lines=5)
    assert run_rotation(archive=SlowArchive(storages["archive"])).count("uploaded") == 1
    [(before, after)] = seen
    assert after - before >= timedelta(seconds=0.5)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_killed_run_leaves_nothing_behind_for_the_next(s3_archive, write_hour_file, log_root, transactional_db):
    """SIGKILL a real rotate_logs mid-run; the next run takes the dead run's claims at once and uploads all."""
    files = {(f"{i:06x}", hour): None for hour in (H1, H2) for i in range(1, 201)}
    for cloud_id, hour in files:
        files[(cloud_id, hour)] = write_hour_file(cloud_id, hour, lines=120)
    # A lease of an hour: only recognising the dead process can free its claims in time.
    env = subprocess_env(
        LOG_ROOT=str(log_root), ROTATION_GRACE_SECONDS="0", ARCHIVE_CONCURRENCY="2",
        ROTATION_CLAIM_LEASE_SECONDS="3600", **s3_archive.env(),
    )  # fmt: skip
    first = subprocess.Popen(manage_command("rotate_logs", "--json"), env=env, stdout=subprocess.PIPE)
    try:
        wait_for(
            lambda: (
                HourFile.objects.filter(state=State.UPLOADED).exists()
                and HourFile.objects.filter(state=State.UPLOADING).exists()
            ),
            timeout=60,
            what="the first run to have uploaded some files and claimed others",
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    held = HourFile.objects.filter(state=State.UPLOADING)
    dead_owner = held.first().claimed_by
    left_behind = held.count()
    assert left_behind > 0 and sum(path.exists() for path in files.values()) > 0

    second = subprocess.run(manage_command("rotate_logs", "--json"), env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    summary = json.loads(second.stdout.decode().strip().splitlines()[-1])

    assert summary["counts"].get("skipped", 0) == 0 and summary["counts"].get("failed", 0) == 0, summary["counts"]
    [taken] = summary["taken_over"]
    assert taken["run"] == dead_owner and taken["files"] == left_behind
    assert f"its process {dead_owner.split(':')[2]} on this host is gone" in taken["why"]
    assert not any(path.exists() for path in files.values())
    assert set(s3_archive.keys()) == {key(cloud_id, hour) for cloud_id, hour in files}
    assert set(HourFile.objects.values_list("state", flat=True)) == {State.UPLOADED}
    assert HourFile.objects.count() == len(files)
    log_text = (log_root / "rotate" / "rotate.log").read_text()
    assert f"taking over {left_behind} files claimed by run {dead_owner}, which is dead" in log_text
