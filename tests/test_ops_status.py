"""Charts and the staff status page: real hour files in a temporary LOG_ROOT, real ledger rows, a real browser."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from loggerapp.hourfiles import reading
from loggerapp.hourfiles.layout import archive_key, hour_file_path, hour_start
from loggerapp.hourfiles.lines import Poll
from loggerapp.models import HourFile, Household, HouseholdStats, Status
from loggerapp.ops import charts
from loggerapp.ops.status import build_status_page, coverage_cells
from tests.fixtures.polls import line, write_polls

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_chart_cache():
    cache.clear()
    reading.forget_counts()


# --- charts: pure drawing ------------------------------------------------------------------------------------
def test_sparkline_breaks_the_line_at_gaps_and_escapes_its_title():
    svg = charts.sparkline_svg([1.0, 2.0, None, None, 1.5, 3.0], title="<script>x</script>")
    path = re.search(r'<path d="([^"]+)"', svg)[1]
    assert path.count("M") == 2 and path.count("L") == 2  # two runs of two points
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_sparkline_without_readings_draws_a_dashed_line():
    svg = charts.sparkline_svg([None] * 60, title="none")
    assert "stroke-dasharray" in svg and "<path" not in svg


def test_negative_demand_gets_a_zero_line():
    assert "<line" in charts.sparkline_svg([-1.0, 2.0])
    assert "<line" not in charts.sparkline_svg([1.0, 2.0])


def test_bucket_means():
    polls = [Poll(0, True, 1.0), Poll(5, True, 3.0), Poll(10, False, None), Poll(25, True, 4.0)]
    assert charts.bucket_means(polls, 0, 30, 3) == [2.0, None, 4.0]


def test_coverage_colours_and_titles():
    hour = datetime(2026, 11, 1, 10, tzinfo=UTC)
    cells = [
        charts.CoverageCell(hour, 600, 600, 600, "ledger"),
        charts.CoverageCell(hour, 600, 400, 600, "disk"),
        charts.CoverageCell(hour, 600, 100, 600, "disk"),
        charts.CoverageCell(hour, None, None, 600, "none"),
    ]
    svg = charts.coverage_strip_svg(cells)
    fills = re.findall(r'fill="(#[0-9a-f]{6})"', svg)
    assert fills == [charts.OK_COLOUR, charts.WARN_COLOUR, charts.BAD_COLOUR, charts.NONE_COLOUR]
    assert "2026-11-01 10:00 UTC: 400 readings of 600 expected (600 lines, from disk)" in svg


# --- the data the charts draw (read through loggerapp.hourfiles.reading) -----------------------------------
def test_reading_only_the_tail_gives_the_same_polls_as_reading_everything(tmp_path):
    hour = datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp()
    write_polls(tmp_path, "002506", hour, hour + 3600, demand=lambda t: (t - hour) / 100)
    path = hour_file_path(tmp_path, "002506", datetime(2026, 11, 1, 10, tzinfo=UTC))
    everything = reading.read_polls(path)
    assert len(everything) == 600
    for since_minute in (0, 1, 30, 59, 59.95):
        since = hour + since_minute * 60
        assert reading.read_polls(path, since=since) == [p for p in everything if p.t >= since]


def test_a_partial_last_line_is_not_a_poll_but_counts_as_a_line(tmp_path):
    """The one counting rule (hourfiles.lines.count_lines): the status page counts a file as the upload does."""
    path = tmp_path / "2026-11-01-10" / "iseif-rainforest-002506-2026-11-01-10.jl"
    path.parent.mkdir()
    path.write_text(line("002506", 1, 1.0) + '{"cloud_id":"002506","poll_ti')
    assert len(reading.read_polls(path)) == 1
    assert reading.count_file_lines(path) == (2, 1)


def test_coverage_uses_the_ledger_for_uploaded_hours_and_counts_local_files(make_household, log_root):
    make_household("002506")
    now = datetime.now(UTC)
    current = hour_start(now)
    uploaded = current - timedelta(hours=3)
    HourFile.objects.create(cloud_id="002506", hour=uploaded, state="uploaded", lines=600, ok_lines=540)
    HourFile.objects.create(cloud_id="002506", hour=current - timedelta(hours=5), state="failed", lines=50, ok_lines=7)
    previous = current - timedelta(hours=1)
    write_polls(log_root, "002506", previous.timestamp(), previous.timestamp() + 1800,
                demand=lambda t: None if int(t) % 12 < 6 else 2.0)  # fmt: skip
    cells = coverage_cells(["002506"], now)["002506"]
    assert len(cells) == 24 and cells[-1].hour == current
    by_hour = {cell.hour: cell for cell in cells}
    assert (by_hour[uploaded].ok_lines, by_hour[uploaded].source) == (540, "ledger")
    assert (by_hour[previous].lines, by_hour[previous].ok_lines, by_hour[previous].source) == (300, 150, "disk")
    assert by_hour[current - timedelta(hours=5)].ok_lines == 7  # failed upload: the ledger's count
    assert by_hour[current - timedelta(hours=2)].source == "none"


def test_admin_chart_reads_uploaded_hours_back_from_the_archive(make_household, log_root, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    make_household("002506")
    now = datetime.now(UTC)
    old = hour_start(now) - timedelta(hours=2)
    key = archive_key("002506", old)
    archived = tmp_path / key
    archived.parent.mkdir(parents=True)
    with open(archived, "w") as handle:
        for i in range(600):
            handle.write(line("002506", old.timestamp() + 6 * i, 1.5))
    HourFile.objects.create(cloud_id="002506", hour=old, state="uploaded", key=key, lines=600, ok_lines=600)
    write_polls(log_root, "002506", now.timestamp() - 600, now.timestamp(), demand=lambda t: None)
    polls = reading.household_polls(log_root, "002506", now - timedelta(hours=3), now)
    assert sum(1 for p in polls if p.ok) == 600  # the archived hour
    assert sum(1 for p in polls if not p.ok) == 100  # the failed polls of the last ten minutes, on disk
    svg = charts.demand_chart_svg(polls, now - timedelta(hours=3), now)
    assert 'class="failed-polls"' in svg and "kW" in svg and '<path d="M' in svg


def test_household_admin_page_shows_the_chart(staff_client, make_household, log_root):
    household = make_household("002506")
    now = time.time()
    write_polls(log_root, "002506", now - 1200, now, demand=lambda t: 2.5)
    page = staff_client.get(f"/admin/loggerapp/household/{household.pk}/change/").content.decode()
    assert "Demand (UTC), last 6 hours" in page and "Uploads, last 2 days" in page
    assert 'class="demand-chart"' in page
    assert staff_client.get("/admin/loggerapp/household/add/").status_code == 200  # no chart for a new one


# --- the status page ----------------------------------------------------------------------------------------
@pytest.fixture
def study(make_household, log_root):
    """Three households: one fine with a full hour on disk, one unreachable for 20 minutes, one inactive."""
    now = time.time()
    fine = make_household("00a001", label="Fine house")
    broken = make_household("00b002", label="Broken house")
    make_household("00c003", label="Away", active=False)
    write_polls(log_root, "00a001", now - 3600, now, demand=lambda t: 1 + ((t // 60) % 10) / 5)
    write_polls(log_root, "00b002", now - 3600, now,
                demand=lambda t: 0.8 if t < now - 1200 else None)  # fmt: skip
    HouseholdStats.objects.filter(household=fine).update(
        status=Status.OK, last_timestamp=timezone.now(), total_events_logged=12345, last_demand_kw=1.6
    )
    HouseholdStats.objects.filter(household=broken).update(
        status=Status.UNREACHABLE,
        last_timestamp=timezone.now() - timedelta(minutes=20),
        total_events_logged=999,
        last_error_kind="unreachable",
    )
    previous = hour_start(now) - timedelta(hours=2)
    for household, ok_lines in ((fine, 600), (broken, 420)):
        HourFile.objects.create(
            household=household, cloud_id=household.cloud_id, hour=previous, state="uploaded", lines=600,
            ok_lines=ok_lines,
        )  # fmt: skip
    return {"fine": fine, "broken": broken}


def test_status_page_needs_staff(client, django_user_model):
    response = client.get("/status/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(django_user_model.objects.create_user("visitor", password="a-long-password-1"))
    assert client.get("/status/").status_code == 302


def test_status_page_puts_problems_first_with_charts(staff_client, study, settings):
    settings.STATUS_REFRESH_SECONDS = 45
    response = staff_client.get("/status/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<meta http-equiv="refresh" content="45">' in page
    order = re.findall(r'data-cloud-id="([0-9a-f]{6})"', page)
    assert order == ["00b002", "00a001", "00c003"]
    assert page.count('class="sparkline"') == 3 and page.count('class="coverage"') == 3
    assert "unreachable" in page and "12345" in page
    assert "<script" not in page.split('id="content-main"')[1]  # no scripts of ours


def test_status_filters_and_search(staff_client, study):
    page = staff_client.get("/status/?problems=1").content.decode()
    assert re.findall(r'data-cloud-id="([0-9a-f]{6})"', page) == ["00b002"]
    page = staff_client.get("/status/?q=fine").content.decode()
    assert re.findall(r'data-cloud-id="([0-9a-f]{6})"', page) == ["00a001"]


def test_files_waiting_are_counted_as_the_uploads_alert_counts_them(make_household, log_root, settings):
    """Issue 10: the header said "0 files waiting" beside an alert of files not uploaded. Files on disk that the
    ledger does not know yet wait too, and the alert's overdue files are always among those the page counts."""
    from loggerapp.ops.alerts import failing_uploads

    settings.ALERT_UPLOAD_FAILING_MINUTES = 60
    now = timezone.now()
    old = hour_start(now) - timedelta(hours=4)
    for cloud_id in ("00a001", "00a002"):
        make_household(cloud_id)
        write_polls(log_root, cloud_id, old.timestamp(), old.timestamp() + 60)
    HourFile.objects.create(cloud_id="00a001", hour=old - timedelta(hours=1), state="failed", reason="refused")
    previous = hour_start(now) - timedelta(hours=1)  # finished, not yet overdue: waits, no alert yet
    write_polls(log_root, "00a001", previous.timestamp(), previous.timestamp() + 60)
    write_polls(log_root, "00a001", now.timestamp() - 60, now.timestamp())  # the current hour never waits
    summary = build_status_page(now=now).summary
    assert (summary["pending_files"], summary["failed_files"]) == (3, 1)
    (alert,) = failing_uploads(now)
    assert alert.message.startswith("3 hour file(s) not uploaded")
    assert "1 failed" in alert.message and "2 on local disk with no ledger row" in alert.message


def test_admin_index_links_to_the_status_page(staff_client):
    page = staff_client.get("/admin/").content.decode()
    assert 'href="/status/"' in page
    assert "Households, uploads and tokens" in page  # still the admin's own index


def test_five_thousand_households_render_fast(db, log_root, settings):
    """5,000 households, problems spread among them: page 1 holds the problems and renders quickly."""
    settings.STATUS_PAGE_SIZE = 100
    now = timezone.now()
    Household.objects.bulk_create(
        [Household(cloud_id=f"{n:06x}", user_email="x@example.org", password="pw") for n in range(5000)]
    )
    ids = dict(Household.objects.values_list("cloud_id", "pk"))
    HouseholdStats.objects.bulk_create(
        [
            HouseholdStats(
                household_id=pk,
                status=Status.UNREACHABLE if n % 97 == 0 else Status.OK,
                last_timestamp=now - timedelta(seconds=10),
                total_events_logged=n,
            )
            for n, pk in enumerate(ids.values())
        ]
    )
    start = time.time()
    for cloud_id in list(ids)[:100]:  # the first page's households have an hour on disk each
        write_polls(log_root, cloud_id, start - 3600, start, every=6)
    started = time.perf_counter()
    status = build_status_page()
    elapsed = time.perf_counter() - started
    assert len(status.rows) == 100
    assert status.summary["problems"] == 52  # n % 97 == 0 for n < 5000
    assert all(row.problem for row in status.rows[:52]) and not status.rows[52].problem
    assert status.page.paginator.num_pages == 50
    print(f"\nstatus page, 5,000 households, 100 rows with an hour of lines each: {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0
    started = time.perf_counter()
    build_status_page()
    print(f"same page again (charts cached): {(time.perf_counter() - started) * 1000:.0f} ms")


@pytest.fixture
def live_server_connections_closed():
    """The live server's request threads keep their PostgreSQL connections (CONN_MAX_AGE); end them after the
    test so that the test database can be dropped at the end of the run."""
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.mark.django_db(transaction=True)
def test_status_page_in_a_real_browser(
    live_server, live_server_connections_closed, browser_page, artifacts_dir, study, client, staff_user
):
    client.force_login(staff_user)
    browser_page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    browser_page.goto(f"{live_server.url}/status/")
    browser_page.screenshot(path=str(artifacts_dir / "status-page.png"), full_page=True)
    assert browser_page.title().startswith("Logger status")
    rows = browser_page.locator("tr.household-row")
    assert rows.count() == 3
    first = rows.nth(0)
    assert first.get_attribute("data-cloud-id") == "00b002"
    assert "problem" in first.get_attribute("class")
    assert first.locator(".problem-reason").inner_text() == "no reading for 20\xa0minutes"
    assert "Fine house" in rows.nth(1).inner_text()
    # Both drawings of every row are SVG, laid out with a real size (rendered, not just present in the markup).
    for svg_class in ("sparkline", "coverage"):
        svgs = browser_page.locator(f"svg.{svg_class}")
        assert svgs.count() == 3
        box = svgs.nth(0).bounding_box()
        assert box and box["width"] >= 100 and box["height"] >= 10
    # A line for the two households with readings on disk, a dashed "no readings" line for the inactive one.
    assert browser_page.locator("svg.sparkline path").count() == 2
    assert browser_page.locator("tr.inactive svg.sparkline line[stroke-dasharray]").count() == 1
    assert browser_page.locator("#problem-count strong").inner_text() == "1"
    assert browser_page.locator("#health-overall").is_visible()
