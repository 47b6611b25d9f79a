"""The Content-Security-Policy of the admin and the status page (settings.SECURE_CSP): the header on every HTML
page, and headless Chromium signing in and using the admin and the status page under it without one violation."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from loggerapp.models import HouseholdStats, Status
from tests.fixtures.polls import write_polls

pytestmark = pytest.mark.django_db


def next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/loggerapp/household/", "/admin/loggerapp/household/add/", "/status/", "/admin/login/"]
)
def test_every_page_carries_the_policy(staff_client, url):
    response = staff_client.get(url, follow=True)
    assert response.status_code == 200
    directives = policy(response)
    assert directives["default-src"] == ["'self'"] and directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["form-action"] == ["'self'"]
    for name in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in directives[name] and "'self'" in directives[name]


def test_our_pages_carry_no_inline_styles_or_scripts(staff_client, make_household, log_root):
    household = make_household("002506")
    HouseholdStats.objects.filter(household=household).update(status=Status.OK, last_demand_kw=1.0)
    write_polls(log_root, "002506", time.time() - 1800, time.time())
    change_page = f"/admin/loggerapp/household/{household.pk}/change/"
    for url in ["/status/", "/admin/", change_page, "/admin/loggerapp/household/"]:
        page = staff_client.get(url).content.decode()
        assert " style=" not in page, url  # a style attribute would need 'unsafe-inline'
        assert "<style>" not in page and "<script>" not in page, url  # inline code only with the nonce


def test_the_api_keeps_its_own_stricter_policy(api_client):
    response = api_client.get("/api/households/")
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_queue_dashboard_may_run_its_inline_code(staff_client):
    directives = policy(staff_client.get("/admin/django-rq/"))
    assert "'unsafe-inline'" in directives["script-src"] and not any("nonce-" in v for v in directives["script-src"])


# --- in a real browser ---------------------------------------------------------------------------------------
@pytest.fixture
def live_server_connections_closed():
    """The live server's request threads keep their PostgreSQL connections; end them so the test database can
    be dropped at the end of the run."""
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.fixture
def csp_house(make_household, log_root, eagle_simulator, settings):
    """A household the simulator answers for, with three hours on disk.

    Made before the browser starts: while Playwright runs, database calls from the test's thread go through
    another connection than the fixtures', one the teardown below would end under a later test's feet.
    """
    settings.EAGLE_CLOUD_URL = eagle_simulator.cloud_url
    household = make_household("00c5b0", password="pw-00c5b0", label="CSP house")
    eagle_simulator.add_household("00c5b0", user_email=household.user_email, password="pw-00c5b0")
    HouseholdStats.objects.filter(household=household).update(status=Status.OK, last_demand_kw=1.5)
    write_polls(log_root, "00c5b0", time.time() - 3 * 3600, time.time(), demand=lambda t: 1 + (t // 600) % 3)
    return household


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("api_redis")
def test_the_admin_and_the_status_page_work_under_the_policy(
    staff_user, csp_house, folder_archive, live_server, live_server_connections_closed, browser_page, artifacts_dir
):
    household = csp_house
    page = browser_page
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(COLLECT_VIOLATIONS)

    def violations() -> list[str]:
        reported = page.evaluate("window.__cspViolations || []")
        logged = [text for text in console if "Content Security Policy" in text]
        return reported + logged

    # Sign in through the real form (its page, the throttled form, the redirect).
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert violations() == []

    # The status page: its stylesheet applies, and both drawings of the row are laid out.
    page.goto(f"{live_server.url}/status/")
    assert page.locator(".status-summary").evaluate("e => getComputedStyle(e).display") == "flex"
    for svg_class in ("sparkline", "coverage"):
        box = page.locator(f"svg.{svg_class}").first.bounding_box()
        assert box and box["width"] >= 100 and box["height"] >= 10
    assert page.locator("ol.breadcrumbs li").count() == 2
    assert violations() == []

    # The household list: the action runs through the admin's own scripts (select a row, pick, Go).
    page.goto(f"{live_server.url}/admin/loggerapp/household/")
    assert page.locator(".status-badge.status-ok").evaluate("e => getComputedStyle(e).color") == "rgb(26, 127, 55)"
    page.check("input.action-select")
    page.select_option("select[name=action]", "test_connection_now")
    page.click("button[name=index]")
    message = page.locator("ul.messagelist li").first.inner_text()
    assert message.startswith("00c5b0: ok, "), message
    assert violations() == []

    # The household's page: status first, the demand chart drawn, the hour strip.
    page.goto(f"{live_server.url}/admin/loggerapp/household/{household.pk}/change/")
    chart = page.locator("svg.demand-chart").bounding_box()
    assert chart and chart["width"] >= 700
    assert page.locator("svg.hour-strip rect").count() == 48
    page.screenshot(path=str(artifacts_dir / "household-admin.png"), full_page=True)
    # A chosen day's chart: the day picker's GET form sits outside the change form (forms cannot nest).
    today = time.strftime("%Y-%m-%d", time.gmtime())
    page.fill("#demand-day-input", today)
    page.click("button[form=demand-day]")
    page.wait_for_url(f"**/change/?day={today}")
    assert page.locator(".demand-section h2").inner_text().endswith(f"on {today}")
    assert page.locator("svg.demand-chart path").count() >= 1
    page.screenshot(path=str(artifacts_dir / "household-day-chart.png"), full_page=True)
    assert violations() == []
    # Download readings: the action's form, then the file.
    page.goto(f"{live_server.url}/admin/loggerapp/household/")
    page.check("input.action-select")
    page.select_option("select[name=action]", "download_readings")
    page.click("button[name=index]")
    page.fill("#id_first_day", today)
    page.fill("#id_last_day", today)
    page.screenshot(path=str(artifacts_dir / "download-readings.png"), full_page=True)
    with page.expect_download() as download:
        page.click("input[name=download]")
    assert download.value.suggested_filename == f"readings-00c5b0-{today}_{next_day(today)}.csv"
    assert open(download.value.path(), "rb").read().startswith(b"cloud_id,poll_time,meter_time,demand_kw,ok,")
    assert violations() == []
    # The ledger list has no actions, so Django adds its own inline <style>, allowed by the nonce.
    page.goto(f"{live_server.url}/admin/loggerapp/hourfile/")
    # An API token: the add form and the page showing the raw token once.
    page.goto(f"{live_server.url}/admin/loggerapp/apitoken/add/")
    page.select_option("#id_user", str(staff_user.pk))
    page.fill("#id_name", "browser")
    page.click("input[name=_save]")
    assert page.locator("#api-token").input_value().startswith("iseif_")
    assert violations() == []

    # The check can fail: an inline style without the nonce is refused and reported.
    page.evaluate("document.head.appendChild(document.createElement('style')).textContent = 'body{color:red}'")
    page.wait_for_timeout(200)
    assert any("style-src" in violation for violation in violations())
