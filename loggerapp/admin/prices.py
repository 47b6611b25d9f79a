"""The household page's price and energy line (issue 14): the latest price, with its currency and the meter's
tariff time, and the energy of the last 24 hours from the summation counters (hourfiles.price_summary)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString

from loggerapp.eagle.currency import currency_letters
from loggerapp.hourfiles.price_summary import PriceSummary, price_summary


def _utc(seconds: float | None) -> str:
    if seconds is None:
        return "not set"
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _kwh(value: float | None) -> str:
    return f"{value:,.3f} kWh" if value is not None else "not reported"


def price_and_energy_html(summary: PriceSummary) -> SafeString:
    """One short block: price (or "no tariff set"), then the energy of the span. Escaped by format_html."""
    latest = summary.latest
    if latest is None:
        price = format_html("no price polled in the last {} hours", summary.hours)
    elif latest.price is None:
        price = format_html("no tariff set on the meter (polled at {})", _utc(latest.t))
    else:
        details = ", ".join(
            part for part in (f"tier {latest.tier}" if latest.tier is not None else "", latest.rate_label or "") if part
        )
        price = format_html(
            "price {} {}/kWh{}, tariff time {} (polled at {})",
            f"{latest.price:.4f}",
            currency_letters(latest.currency) or "(currency not given)",
            f" ({details})" if details else "",
            _utc(latest.price_time),
            _utc(latest.t),
        )
    energy = summary.energy
    if energy is None:
        used = format_html("energy, last {} hours: not enough summation readings", summary.hours)
    else:
        used = format_html(
            "energy, last {} hours: {} delivered, {} received (from {} to {})",
            summary.hours,
            _kwh(energy.delivered_kwh),
            _kwh(energy.received_kwh),
            _utc(energy.first_t),
            _utc(energy.last_t),
        )
    note = " (archive unreadable: local files only)" if summary.archive_unreadable else ""
    return format_html('<div class="household-price">{}<br>{}{}</div>', price, used, note)


def household_price_and_energy(cloud_id: str, now: datetime | None = None) -> SafeString:
    return price_and_energy_html(price_summary(cloud_id, Path(settings.LOG_ROOT), now))
