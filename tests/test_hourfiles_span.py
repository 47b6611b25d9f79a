"""Reading a household's hours back over a span (hourfiles.span, hourfiles.archived): local files and the archive
together, every line once, in time order, against a real SeaweedFS and real folders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from loggerapp.hourfiles import archived, span
from loggerapp.hourfiles.archived import ArchiveReadError, archive_reader
from loggerapp.hourfiles.content import encode
from loggerapp.hourfiles.layout import FILE_KINDS, HOUR, archive_key, hour_file_path
from loggerapp.hourfiles.reading import household_polls
from tests.fixtures.s3 import hour_content, reading_line, s3_storage_options

H = datetime(2026, 1, 31, 22, tzinfo=UTC)  # two hours before a month ends: spans cross days and months


def put(archive, key: str, body: bytes) -> None:
    """Store an object as the upload would have (S3 bucket or archive folder)."""
    if hasattr(archive, "bucket"):
        archive.client.put_object(Bucket=archive.bucket, Key=key, Body=body)
    else:
        path = archive / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def write_local(log_root, cloud_id: str, hour: datetime, content: bytes, name: str | None = None):
    path = hour_file_path(log_root, cloud_id, hour)
    if name is not None:
        path = path.with_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def poll_times(hours) -> list[float]:
    return [record["poll_time"] for hour in hours for _kind, record in hour.records]


def read_all(log_root, cloud_ids, start, end, **kwargs):
    return list(span.household_hours(cloud_ids, start, end, log_root=log_root, concurrency=4, **kwargs))


@pytest.fixture(params=["s3", "folder"])
def archive(request, log_root):
    """Both archives the settings can configure: a bucket of the session's SeaweedFS, or a folder."""
    return request.getfixturevalue("s3_archive" if request.param == "s3" else "folder_archive")


def test_an_hour_both_archived_and_on_disk_gives_every_line_once_in_time_order(archive, log_root):
    lines = hour_content("002506", H, lines=600, failed_every=7).splitlines(keepends=True)
    put(archive, archive_key("002506", H), b"".join(lines[:400]))
    # The local file still holds lines the archive has (an upload being verified, or a late writer's leftovers),
    # one of them written with other JSON spacing, and lines the archive lacks; its order is not poll order.
    respaced = json.dumps(json.loads(lines[350]), indent=None, separators=(", ", ": ")).encode() + b"\n"
    write_local(log_root, "002506", H, b"".join(reversed(lines[351:])) + respaced + b"".join(lines[300:350]))
    hours = read_all(log_root, ["002506"], H, H + HOUR)
    expected = [json.loads(line)["poll_time"] for line in lines]
    assert poll_times(hours) == expected  # 600 polls: none lost, none twice, in time order
    (hour,) = hours
    assert (hour.objects, hour.unreadable, hour.not_polls) == (1, [], 0)
    assert sum(record["ok"] is False for _kind, record in hour.records) == 86


def test_plain_and_gzip_objects_of_one_hour_and_the_span_edges(s3_archive, log_root):
    first = hour_content("002506", H, lines=600)
    second = hour_content("002506", H + HOUR, lines=600)
    put(s3_archive, archive_key("002506", H), first[: len(first) // 2])
    put(s3_archive, archive_key("002506", H) + ".gz", encode(first, use_gzip=True))  # ARCHIVE_GZIP switched on
    put(s3_archive, archive_key("002506", H + HOUR) + ".gz", encode(second, use_gzip=True))
    start, end = H + timedelta(minutes=30), H + HOUR + timedelta(minutes=10)
    times = poll_times(read_all(log_root, ["002506"], start, end))
    every = [json.loads(line)["poll_time"] for line in (first + second).splitlines()]
    assert times == [t for t in every if start.timestamp() <= t < end.timestamp()]
    assert len(times) == 300 + 100  # the second half of the first hour, the first ten minutes of the next


def test_the_listing_takes_only_the_households_own_hours_from_their_own_folders(s3_archive, log_root, monkeypatch):
    monkeypatch.setattr(archived, "LIST_PAGE", 3)  # several pages of a real listing
    hours = [H - 2 * HOUR + i * HOUR for i in range(6)]  # 20:00 on the 31st to 01:00 on February 1st
    for hour in hours:
        put(s3_archive, archive_key("002506", hour), reading_line("002506", hour.timestamp() + 1))
        put(s3_archive, archive_key("002507", hour), reading_line("002507", hour.timestamp() + 2))
    decoys = [
        f"rainforest-logs/002506/2026/01/30/{archive_key('002506', H).rsplit('/', 1)[1]}",  # another day's folder
        "rainforest-logs/002506/2026/01/31/iseif-rainforest-002507-2026-01-31-22.jl",  # another household's name
        "rainforest-logs/002506/2026/01/31/.iseif-rainforest-002506-2026-01-31-22.jl.1f2e.tmp",
        "rainforest-logs/002506/2026/01/31/notes.txt",
        "elsewhere/002506/2026/01/31/iseif-rainforest-002506-2026-01-31-22.jl",
    ]
    for key in decoys:
        put(s3_archive, key, reading_line("002506", H.timestamp() + 3))
    reader = archive_reader()
    found = reader.objects("002506", H - HOUR, H + 2 * HOUR)  # 21:00 to midnight: three hours, one day
    assert [item.name.hour for item in found] == [H - HOUR, H, H + HOUR]
    assert all(item.key == archive_key("002506", item.name.hour) for item in found)
    times = poll_times(read_all(log_root, ["002506", "002507"], H - 2 * HOUR, H + 4 * HOUR))
    assert times == [hour.timestamp() + 1 for hour in hours] + [hour.timestamp() + 2 for hour in hours]


def test_a_local_file_uploaded_while_being_read_is_read_from_the_archive(folder_archive, log_root):
    content = hour_content("002506", H, lines=600)
    path = write_local(log_root, "002506", H, content)
    reader = archive_reader()
    (planned,) = span.plan_household("002506", H, H + HOUR, log_root=log_root, reader=reader)
    assert planned.local and not planned.archived
    put(folder_archive, archive_key("002506", H), content)  # the upload stores and verifies, then deletes
    path.unlink()
    hour = span.read_hour(planned, H, H + HOUR, reader)
    assert len(hour.records) == 600 and hour.objects == 1


def test_an_unreadable_object_is_named_and_the_other_hours_are_read(s3_archive, log_root):
    put(s3_archive, archive_key("002506", H) + ".gz", encode(hour_content("002506", H, lines=20), True)[:40])
    put(s3_archive, archive_key("002506", H + HOUR), hour_content("002506", H + HOUR, lines=20))
    write_local(log_root, "002506", H + HOUR, hour_content("002506", H + HOUR, lines=25) + b'{"cloud_id": "0025')
    hours = read_all(log_root, ["002506"], H, H + 2 * HOUR)
    assert [len(hour.records) for hour in hours] == [0, 25]
    assert hours[0].unreadable == [archive_key("002506", H) + ".gz"]
    assert hours[1].not_polls == 1  # a line still being written is counted, not exported


def test_an_archive_that_refuses_raises_instead_of_returning_less(seaweedfs, settings, log_root):
    bucket = seaweedfs.create_bucket()
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": s3_storage_options(seaweedfs.endpoint, bucket, secret_key="wrong-secret"),
        },
    }
    with pytest.raises(ArchiveReadError) as refused:
        read_all(log_root, ["002506"], H, H + HOUR)
    assert bucket in str(refused.value) and "wrong-secret" not in str(refused.value)
    write_local(log_root, "002506", H, hour_content("002506", H, lines=10))
    assert len(household_polls(log_root, "002506", H, H + HOUR)) == 10  # a chart keeps its local polls


def test_a_new_kind_of_hour_file_is_read_beside_demand_in_poll_time_order(folder_archive, log_root):
    """Issue 14 part 1's price files, with their own prefix: one entry in FILE_KINDS."""
    assert FILE_KINDS["price"] == "iseif-rainforest-price-"
    put(folder_archive, archive_key("002506", H), hour_content("002506", H, lines=10))
    price = b"".join(
        json.dumps({"cloud_id": "002506", "poll_time": H.timestamp() + 60 * i + 3, "ok": True, "price": 0.25}).encode()
        + b"\n"
        for i in range(2)
    )
    write_local(log_root, "002506", H, price, name="iseif-rainforest-price-002506-2026-01-31-22.jl")
    (hour,) = read_all(log_root, ["002506"], H, H + HOUR)
    assert [kind for kind, _record in hour.records] == ["demand", "price"] + ["demand"] * 9 + ["price"]
    assert poll_times([hour]) == sorted(poll_times([hour]))
    # A reader that wants one kind gets, and fetches, only that kind (the admin's price summary, the demand chart).
    (prices,) = span.household_hours(["002506"], H, H + HOUR, log_root=log_root, kinds=("price",))
    assert [kind for kind, _record in prices.records] == ["price", "price"] and prices.objects == 0
    (demand,) = span.household_hours(["002506"], H, H + HOUR, log_root=log_root, kinds=("demand",))
    assert {kind for kind, _record in demand.records} == {"demand"} and demand.local_bytes == 0
    assert len(household_polls(log_root, "002506", H, H + HOUR)) == 10  # the chart: demand polls only


def test_the_admin_chart_reads_archived_hours_without_any_ledger_row(folder_archive, log_root, db):
    put(folder_archive, archive_key("002506", H), hour_content("002506", H, lines=600))
    write_local(log_root, "002506", H + HOUR, hour_content("002506", H + HOUR, lines=100))
    polls = household_polls(log_root, "002506", H, H + 2 * HOUR)
    assert len(polls) == 700 and [poll.t for poll in polls] == sorted(poll.t for poll in polls)
