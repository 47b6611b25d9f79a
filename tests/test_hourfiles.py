"""The hour file's layout, stored form and reading back (loggerapp.hourfiles): pure rules on edge cases, plus the
readers on a real temporary LOG_ROOT and a real archive folder. The line format has tests/test_hourfiles_lines.py.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from loggerapp.hourfiles import content, reading
from loggerapp.hourfiles.layout import (
    HOUR,
    archive_key,
    hour_file_path,
    hour_files_on_disk,
    hour_folders,
    hour_index,
    hour_label,
    hour_of_index,
    hour_start,
    hours_between,
    parse_hour_file_name,
)
from loggerapp.models import HourFile
from tests.fixtures.s3 import hour_content, reading_line

H = datetime(2026, 11, 28, 14, tzinfo=UTC)


# --- layout ----------------------------------------------------------------------------------------------------
def test_an_hour_is_the_same_whichever_way_it_is_asked():
    moment = H + timedelta(minutes=59, seconds=59.999)
    assert hour_start(moment) == hour_start(moment.timestamp()) == H
    assert hour_of_index(hour_index(moment.timestamp())) == H
    assert hour_index(H.timestamp() - 0.001) == hour_index(H.timestamp()) - 1
    with pytest.raises(ValueError, match="naive"):
        hour_start(datetime(2026, 11, 28, 14))
    assert hours_between(H + timedelta(minutes=30), H + timedelta(hours=2)) == [H, H + HOUR]
    assert hours_between(H, H) == []


def test_names_paths_and_keys_are_the_studys(tmp_path):
    assert (
        hour_file_path(tmp_path, "002506", H) == tmp_path / "2026-11-28-14" / "iseif-rainforest-002506-2026-11-28-14.jl"
    )
    assert archive_key("002506", H) == "rainforest-logs/002506/2026/11/28/iseif-rainforest-002506-2026-11-28-14.jl"
    assert archive_key("002506", H, prefix="") == "002506/2026/11/28/iseif-rainforest-002506-2026-11-28-14.jl"
    assert parse_hour_file_name("iseif-rainforest-002506-2026-11-28-14.jl") == ("002506", H)
    assert parse_hour_file_name("iseif-rainforest-002506-2026-11-28-14.jl.tmp") is None
    with pytest.raises(Exception, match="6 hexadecimal digits"):
        hour_file_path(tmp_path, "../etc", H)


def test_the_folder_scan_sees_hour_folders_only_oldest_first(tmp_path):
    for relative in [
        "2026-11-28-15/iseif-rainforest-002506-2026-11-28-15.jl",
        "2026-11-28-13/iseif-rainforest-002506-2026-11-28-13.jl",
        "2026-11-28-13/iseif-rainforest-00ab12-2026-11-28-12.jl",  # names another hour than its folder
        "2026-11-28-13/notes.txt",
        "2026-11-28-14/iseif-rainforest-00ab12-2026-11-28-14.jl",
        "pinger/pinger.log",
        "2026-11-28-1/iseif-rainforest-002506-2026-11-28-01.jl",  # not an hour folder name
    ]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}\n")
    (tmp_path / "2026-11-28-16").write_text("a file, not a folder")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "2026-11-28-12")  # never followed
    assert [hour_label(folder.hour) for folder in hour_folders(tmp_path)] == [
        "2026-11-28-13",
        "2026-11-28-14",
        "2026-11-28-15",
    ]
    assert hour_files_on_disk(tmp_path, before=H + HOUR) == [("002506", H - HOUR), ("00ab12", H)]
    assert hour_folders(tmp_path / "missing") == [] and hour_files_on_disk(tmp_path / "missing", H) == []


# --- stored objects: gzip or not, by their bytes ----------------------------------------------------------------
def test_a_stored_object_is_decoded_by_its_bytes_whatever_its_key_says():
    lines = hour_content("002506", H, lines=100)
    zipped = content.encode(lines, use_gzip=True)
    assert zipped == content.encode(lines, use_gzip=True)  # same lines, same object (header time fixed)
    assert gzip.decompress(zipped) == lines
    assert content.decode(zipped) == lines and content.decode(lines) == lines
    assert content.encode(lines, use_gzip=False) is lines
    with pytest.raises(content.UnreadableObject):
        content.decode(zipped[:40])  # gzip's magic, then cut short


def test_merge_keeps_every_reading_once_in_poll_time_order():
    a = [reading_line("002506", t) for t in (6.0, 18.0, 30.0)]
    b = [reading_line("002506", t) for t in (0.0, 18.0, 24.0)]
    respaced = json.dumps(json.loads(a[2]), indent=None, separators=(",", ":")).encode() + b"\n"
    merged = content.merge(b"".join(a), b"".join(b) + respaced)
    times = [json.loads(line)["poll_time"] for line in merged.splitlines()]
    assert times == [0.0, 6.0, 18.0, 24.0, 30.0]  # duplicates (even re-spaced) dropped
    assert content.merge(b"".join(a), b"".join(a)) == b"".join(a)
    assert content.holds_all(b"".join(a + b), b"".join(b)) and not content.holds_all(b"".join(a), b"".join(b))
    broken = b'{"cloud_id": "002506", "poll'
    assert content.merge(b"".join(a), broken).endswith(broken + b"\n")  # kept, at the end, never lost


def test_merge_survives_a_poll_time_too_large_for_a_float():
    good = reading_line("002506", 6.0)
    huge = b'{"cloud_id": "002506", "poll_time": 1' + b"0" * 400 + b"}"
    merged = content.merge(good, huge + b"\n")
    assert merged == good + huge + b"\n"  # kept, at the end, never lost


# --- reading back ------------------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_an_uploaded_gzip_hour_reads_back_whether_or_not_its_key_ends_in_gz(suffix, log_root, settings, tmp_path):
    """Readers decide gzip by the object's bytes, as the upload does (a key without .gz used to read as no data)."""
    archive = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(archive)}},
    }
    key = archive_key("002506", H) + suffix
    (archive / key).parent.mkdir(parents=True)
    (archive / key).write_bytes(content.encode(hour_content("002506", H, lines=600, failed_every=10), True))
    HourFile.objects.create(cloud_id="002506", hour=H, state="uploaded", key=key, lines=600, ok_lines=540)
    polls = reading.household_polls(log_root, "002506", H, H + HOUR)
    assert len(polls) == 600 and sum(poll.ok for poll in polls) == 540
    assert polls == sorted(polls, key=lambda poll: poll.t)


@pytest.mark.django_db
def test_an_unreadable_archived_hour_is_a_gap_not_an_error(log_root, settings, tmp_path):
    archive = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(archive)}},
    }
    key = archive_key("002506", H) + ".gz"
    (archive / key).parent.mkdir(parents=True)
    (archive / key).write_bytes(content.encode(hour_content("002506", H, lines=10), True)[:30])
    HourFile.objects.create(cloud_id="002506", hour=H, state="uploaded", key=key)
    HourFile.objects.create(cloud_id="002506", hour=H + HOUR, state="uploaded", key="missing/object.jl")
    assert reading.household_polls(log_root, "002506", H, H + 2 * HOUR) == []


def test_counts_of_a_local_file_follow_the_one_rule_and_its_changes(tmp_path):
    path = hour_file_path(tmp_path, "002506", H)
    path.parent.mkdir()
    path.write_bytes(reading_line("002506", 1.0) + reading_line("002506", 7.0, ok=False))
    assert reading.count_file_lines(path) == (2, 1)
    with open(path, "ab") as handle:  # appended: a new size, a new count
        handle.write(b'{"cloud_id":"002506","poll_time":13.0,"ok":true}')
    assert reading.count_file_lines(path) == (3, 2)
    assert reading.count_file_lines(tmp_path / "missing.jl") is None


def test_newest_hour_files_of_a_household_newest_first(tmp_path):
    for hour in (H - HOUR, H, H + HOUR):
        path = hour_file_path(tmp_path, "002506", hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(reading_line("002506", hour.timestamp()))
    hour_file_path(tmp_path, "00ab12", H + 2 * HOUR).parent.mkdir()  # a newer folder without its file
    assert [parse_hour_file_name(p.name)[1] for p in reading.newest_hour_files(tmp_path, "002506")] == [
        H + HOUR,
        H,
        H - HOUR,
    ]
