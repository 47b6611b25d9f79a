"""manage.py import_households: the study's JSON-lines user records into households."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from loggerapp.models import Household, HouseholdStats
from tests.fixtures.core import manage_command, subprocess_env

pytestmark = pytest.mark.django_db

PASSWORDS = ["pw-alpha-9f8e7d", "pw-bravo-1a2b3c", "pw-charlie-445566"]


def _line(**fields) -> str:
    return json.dumps(fields)


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


def test_atomic_refuses_the_whole_file(tmp_path):
    path = tmp_path / "mixed.jl"
    path.write_text(_line(cloud_id="000001", user_email="a@example.org", user_pw="p1") + "\n" + BAD_LINES["space"])
    code, out, _ = _run(str(path), "--atomic")
    assert code == 1
    assert "were not written" in out
    assert not Household.objects.exists()


def test_dry_run_writes_nothing(good_file):
    code, out, _ = _run(str(good_file), "--dry-run")
    assert code == 0
    assert "3 created" in out and "would be written" in out
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
