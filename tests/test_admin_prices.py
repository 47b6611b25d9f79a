"""The household page's price and energy (admin/prices.py, hourfiles/price_summary.py): the latest price with
its currency and tariff time, and the last 24 hours' energy, read from an archived hour and a local one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from loggerapp.hourfiles.layout import hour_start
from loggerapp.hourfiles.price_lines import price_line
from loggerapp.hourfiles.price_summary import price_summary
from loggerapp.rotation.job import run_rotation
from tests.fixtures.prices import price_poll

pytestmark = pytest.mark.django_db(transaction=True)

NOW = hour_start(timezone.now())
H1, H2 = NOW - timedelta(hours=1), NOW - timedelta(hours=2)


def page(staff_client, household) -> str:
    return staff_client.get(f"/admin/loggerapp/household/{household.pk}/change/").content.decode()


def test_the_page_shows_the_latest_price_and_the_energy_of_archived_and_local_hours(
    staff_client, make_household, write_price_file, s3_archive, settings, log_root
):
    settings.ROTATION_GRACE_SECONDS = 0
    household = make_household("002506")
    write_price_file("002506", H2, lines=60, start_kwh=1000.0)  # 1000.00 to 1001.18 kWh at 1.2 kW
    assert run_rotation().done == 1  # H2 is now only in the archive
    write_price_file("002506", H1, lines=60, start_kwh=1001.2)  # local: 1001.20 to 1002.38

    summary = price_summary("002506", log_root)
    assert summary.energy is not None and summary.energy.delivered_kwh == pytest.approx(2.38)
    assert summary.latest is not None and summary.latest.t == pytest.approx(H1.timestamp() + 59 * 60 + 0.5)

    shown = page(staff_client, household)
    assert "Price and energy" in shown
    assert "price 0.1176 USD/kWh (tier 1, Off Peak)" in shown
    tariff_time = H1 + timedelta(minutes=58, seconds=58)  # the meter's price time, not the poll's
    polled = H1 + timedelta(minutes=59)
    assert f"tariff time {tariff_time:%Y-%m-%d %H:%M:%S} UTC (polled at {polled:%Y-%m-%d %H:%M:%S} UTC)" in shown
    assert "energy, last 24 hours: 2.380 kWh delivered, 0.000 kWh received" in shown


def test_a_meter_without_a_tariff_and_a_household_without_price_files(
    staff_client, make_household, write_price_file, log_root
):
    not_set = make_household("00ab12")
    t = H1.timestamp() + 30
    content = b"".join(price_line(price_poll("00ab12", t + i * 60, 5.0 + i, price=None), t + i * 60) for i in range(3))
    write_price_file("00ab12", H1, content=content)
    shown = page(staff_client, not_set)
    assert "no tariff set on the meter" in shown
    assert "energy, last 24 hours: 2.000 kWh delivered" in shown

    nothing = make_household("00ff00")
    shown = page(staff_client, nothing)
    assert "no price polled in the last 24 hours" in shown
    assert "not enough summation readings" in shown
