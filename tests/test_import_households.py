"""manage.py import_households: the study's JSON-lines user records into households."""

from __future__ import annotations

import io
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from loggerapp.models import Household, HouseholdStats, Status
from tests.fixtures.core import manage_command, subprocess_env

pytestmark = pytest.mark.django_db

PASSWORDS = ["pw-alpha-9f8e7d", "pw-bravo-1a2b3c", "pw-charlie-445566"]


def _line(**fields) -> str:
    return json.dumps(fields, ensure_ascii=False)


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "users.jl"
    path.write_text(
        "\n".join(
            [
                _line(
                    cloud_id="002506",
                    user_email="a@example.org",
                    user_pw=PASSWORDS[0],
                    total_events_logged=1200,
                    first_timestamp=1443326400,
                    last_timestamp=1443330000.5,
                ),
                _line(cloud_id="00A1B2", user_email="b@example.org", user_pw=PASSWORDS[1]),
                _line(
                    cloud_id="0000ff",
                    user_pw=PASSWORDS[2],
                    protocol="eagle200",
                    address="192.0.2.10",
                    label="Flat 3",
                    last_timestamp="2015-09-27T05:00:00Z",
                ),
            ]
        )
        + "\n"
    )
    return path


def _run(*args, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        import sys

        old = sys.stdin
        sys.stdin = io.StringIO(stdin)
    try:
        call_command("import_households", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    finally:
        if stdin is not None:
            sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def test_a_good_file_creates_every_household_with_its_statistics(good_file):
    code, out, err = _run(str(good_file))
    assert code == 0, err
    assert "3 created" in out
    assert set(Household.objects.values_list("cloud_id", flat=True)) == {"002506", "00a1b2", "0000ff"}
    household = Household.objects.get(cloud_id="002506")
    assert household.password == PASSWORDS[0]
    stats = HouseholdStats.objects.get(household=household)
    assert stats.total_events_logged == 1200
    assert stats.first_timestamp == datetime(2015, 9, 27, 4, 0, tzinfo=UTC)
    assert stats.last_timestamp == datetime(2015, 9, 27, 5, 0, 0, 500000, tzinfo=UTC)
    local = Household.objects.get(cloud_id="0000ff")
    assert (local.protocol, local.address, local.label) == ("eagle200", "192.0.2.10", "Flat 3")


def test_importing_twice_is_idempotent(good_file):
    _run(str(good_file))
    code, out, _ = _run(str(good_file))
    assert code == 0
    assert "0 created, 0 updated, 3 unchanged" in out
    assert Household.objects.count() == 3


def test_statistics_only_move_forward(good_file):
    _run(str(good_file))
    HouseholdStats.objects.filter(household__cloud_id="002506").update(total_events_logged=5000)
    _run(str(good_file))
    assert HouseholdStats.objects.get(household__cloud_id="002506").total_events_logged == 5000


def test_a_changed_password_is_updated(good_file, tmp_path):
    _run(str(good_file))
    changed = tmp_path / "changed.jl"
    changed.write_text(_line(cloud_id="002506", user_email="a@example.org", user_pw="new-password-x") + "\n")
    _code, out, _ = _run(str(changed))
    assert "1 updated" in out
    assert Household.objects.get(cloud_id="002506").password == "new-password-x"


BAD_LINES = {
    "not json": "{cloud_id: 002506",
    "not an object": "[1, 2]",
    "integer id": _line(cloud_id=2506, user_email="x@example.org", user_pw="p"),
    "traversal": _line(cloud_id="../x", user_email="x@example.org", user_pw="p"),
    "space": _line(cloud_id="00 27", user_email="x@example.org", user_pw="p"),
    "seven digits": _line(cloud_id="0025067", user_email="x@example.org", user_pw="p"),
    "no password": _line(cloud_id="00aaaa", user_email="x@example.org"),
    "bad email": _line(cloud_id="00aaab", user_email="nope", user_pw="p"),
    "bad timestamp": _line(cloud_id="00aaac", user_email="x@example.org", user_pw="p", last_timestamp="yesterday"),
    "negative total": _line(cloud_id="00aaad", user_email="x@example.org", user_pw="p", total_events_logged=-1),
    "unknown protocol": _line(cloud_id="00aaae", user_email="x@example.org", user_pw="p", protocol="zigbee"),
    # Issue 11: these aborted the whole import with a traceback.
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "deep nesting in a field": '{"cloud_id": "00aaaf", "user_pw": "p", "label": ' + "[" * 50_000 + "]" * 50_000 + "}",
    "total above 2**63": _line(cloud_id="00aab0", user_email="x@example.org", user_pw="p", total_events_logged=2**63),
    "a number of 5000 digits": '{"cloud_id": "00aab1", "user_pw": "p", "total_events_logged": ' + "9" * 5000 + "}",
    "timestamp past 9999": _line(cloud_id="00aab2", user_email="x@example.org", user_pw="p", first_timestamp=2**70),
    "a NUL character": _line(cloud_id="00aab3", user_email="x@example.org", user_pw="p", label="flat\u00003"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_each_kind_of_bad_line_is_reported_by_number(tmp_path, kind):
    path = tmp_path / "bad.jl"
    path.write_text(_line(cloud_id="002506", user_email="a@example.org", user_pw="ok-pw") + "\n" + BAD_LINES[kind])
    code, out, err = _run(str(path))
    assert code == 1
    assert "line 2:" in err
    assert "1 created" in out and "1 failed" in out
    assert list(Household.objects.values_list("cloud_id", flat=True)) == ["002506"]


def test_a_mixed_file_imports_the_good_lines(tmp_path):
    path = tmp_path / "mixed.jl"
    lines = [
        _line(cloud_id="000001", user_email="a@example.org", user_pw="p1"),
        BAD_LINES["traversal"],
        "",
        _line(cloud_id="000002", user_email="b@example.org", user_pw="p2"),
        BAD_LINES["not json"],
    ]
    path.write_text("\n".join(lines) + "\n")
    code, _out, err = _run(str(path))
    assert code == 1
    assert "line 2:" in err and "line 5:" in err
    assert set(Household.objects.values_list("cloud_id", flat=True)) == {"000001", "000002"}


def test_atomic_refuses_the_whole_file_and_says_so_without_contradiction(tmp_path):
    path = tmp_path / "mixed.jl"
    path.write_text(_line(cloud_id="000001", user_email="a@example.org", user_pw="p1") + "\n" + BAD_LINES["space"])
    code, out, err = _run(str(path), "--atomic")
    assert code == 1
    assert "line 2:" in err
    assert out.startswith("Nothing written: 1 failed and --atomic refuses the whole file")
    assert "would create 1" in out
    assert "created" not in out  # it used to say "1 created ... (were not written)"
    assert not Household.objects.exists()


def test_dry_run_writes_nothing(good_file):
    code, out, _ = _run(str(good_file), "--dry-run")
    assert code == 0
    assert out.startswith("Dry run, nothing written: the file would create 3, update 0, leave 0 unchanged")
    assert "created" not in out
    assert not Household.objects.exists()


def test_standard_input(good_file):
    code, _out, _ = _run("-", stdin=good_file.read_text())
    assert code == 0
    assert Household.objects.count() == 3


def test_a_password_is_never_printed_even_for_a_broken_line(tmp_path):
    path = tmp_path / "leaky.jl"
    path.write_text(
        '{"cloud_id": "../x", "user_email": "a@example.org", "user_pw": "TOPSECRET-1"}\n'
        '{"cloud_id": "000001", "user_pw": "TOPSECRET-2", "user_email": "bad"}\n'
        '{"cloud_id": "000002", "user_pw": "TOPSECRET-3", \n'
    )
    code, out, err = _run(str(path))
    assert code == 1
    assert "TOPSECRET" not in out + err


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_when_a_line_of_a_large_file_fails(tmp_path):
    path = tmp_path / "large.jl"
    lines = [_line(cloud_id=f"{n:06x}", user_email=f"u{n}@example.org", user_pw=f"pw{n}") for n in range(1500)]
    lines.append("garbage")
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        manage_command("import_households", str(path)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "line 1501:" in result.stderr
    assert "1500 created" in result.stdout
    assert Household.objects.count() == 1500
    assert "pw1" not in result.stdout + result.stderr


def test_a_byte_order_mark_keeps_the_first_line(tmp_path, good_file):
    path = tmp_path / "excel.jl"
    path.write_bytes(b"\xef\xbb\xbf" + good_file.read_bytes())
    code, out, err = _run(str(path))
    assert (code, err) == (0, "")
    assert "3 created" in out
    assert Household.objects.filter(cloud_id="002506").exists()  # the first line


def test_a_byte_order_mark_on_standard_input_keeps_the_first_line(good_file):
    code, _out, err = _run("-", stdin="\ufeff" + good_file.read_text())
    assert (code, err) == (0, "")
    assert Household.objects.count() == 3


def test_a_line_that_is_not_utf8_is_one_bad_line(tmp_path):
    path = tmp_path / "latin1.jl"
    lines = [
        _line(cloud_id="000001", user_email="a@example.org", user_pw="p1").encode(),
        _line(cloud_id="000002", user_email="b@example.org", user_pw="p2", label="Caf\u00e9").encode("latin-1"),
        _line(cloud_id="000003", user_email="c@example.org", user_pw="p3", label="Caf\u00e9").encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = _run(str(path))
    assert code == 1
    position = lines[1].index(b"\xe9") + 1
    assert err.strip() == f"line 2: not UTF-8 text (byte {position} of the line); save the file as UTF-8"
    assert "2 created" in out and "1 failed" in out
    assert set(Household.objects.values_list("cloud_id", flat=True)) == {"000001", "000003"}
    assert Household.objects.get(cloud_id="000003").label == "Caf\u00e9"


def test_a_utf16_file_is_refused_as_a_whole_in_one_line(tmp_path, good_file):
    path = tmp_path / "utf16.jl"
    path.write_bytes(good_file.read_text().encode("utf-16"))
    with pytest.raises(CommandError) as refused:
        call_command("import_households", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    expected = f"{path}: the file is UTF-16 text; save it as UTF-8 and import it again; nothing was written"
    assert str(refused.value) == expected
    assert not Household.objects.exists()


def _alert_lines() -> list[str]:
    out = io.StringIO()
    call_command("check_alerts", "--report-only", stdout=out)
    return [line for line in out.getvalue().splitlines() if line.startswith("FIRING  silent:")]


def test_an_imported_household_is_silent_only_after_it_was_polled(tmp_path, settings):
    """Issue 10: importing the study's records raised "no reading for 11 years" at once. The old logger's
    last_timestamp counts only once the pinger has polled the household; until then it gets the silence period from
    its import, like a new household (so one that no pinger ever reaches still alerts)."""
    settings.ALERT_SILENCE_MINUTES = 10
    settings.HEALTH_REQUIRE_PINGER = False
    path = tmp_path / "old.jl"
    records = [
        _line(cloud_id=f"0a000{n}", user_email=f"{n}@example.org", user_pw=f"p{n}", last_timestamp=1443330000)
        for n in (1, 2, 3)
    ]
    path.write_text("\n".join(records) + "\n")
    assert _run(str(path))[0] == 0
    assert _alert_lines() == []

    # The first poll: 0a0001 answers, 0a0002 does not; 0a0003 is never polled.
    HouseholdStats.objects.filter(household__cloud_id="0a0001").update(status=Status.OK, last_timestamp=timezone.now())
    HouseholdStats.objects.filter(household__cloud_id="0a0002").update(status=Status.UNREACHABLE)
    (silent,) = _alert_lines()
    assert re.match(r"FIRING  silent:0a0002: 0a0002: no reading for \d+\xa0years", silent)

    # Eleven minutes after the import, the one no pinger reached is silent too.
    Household.objects.update(created=timezone.now() - timedelta(minutes=11))
    HouseholdStats.objects.filter(household__cloud_id="0a0001").update(last_timestamp=timezone.now())
    assert [line.split(":")[1] for line in _alert_lines()] == ["0a0002", "0a0003"]
