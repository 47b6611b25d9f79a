"""The pinger's event loop (PINGER_EVENT_LOOP): uvloop by default, asyncio's own on request or when uvloop is
missing, a clear error for any other name; and the optional profile of a run (``runpinger --profile``)."""

from __future__ import annotations

import asyncio
import pstats
import sys

import pytest

from loggerapp.pinger import eventloop
from tests.fixtures.pinger import read_hour_files
from tests.test_pinger_run import add


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_chosen_by_default_and_runs_the_pinger():
    name, factory = eventloop.loop_factory("uvloop")
    assert name == "uvloop" and factory is not None
    assert eventloop.run(_loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_on_request():
    assert eventloop.loop_factory(" AsyncIO ") == ("asyncio", None)
    assert eventloop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_without_uvloop_installed_the_standard_loop_is_used(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an install without uvloop looks like to import
    assert eventloop.loop_factory("uvloop") == ("asyncio", None)
    assert "uvloop is not installed" in caplog.text


def test_an_unknown_loop_is_a_clear_error_and_nothing_runs():
    with pytest.raises(ValueError, match="PINGER_EVENT_LOOP must be one of uvloop, asyncio, not 'tokio'"):
        eventloop.loop_factory("tokio")
    main = _loop_module()
    with pytest.raises(ValueError):
        eventloop.run(main, "tokio")
    assert main.cr_frame is None  # closed, not left to warn that it was never awaited


def test_a_profile_is_written_when_asked(tmp_path):
    path = tmp_path / "pinger.prof"
    assert eventloop.run(_loop_module(), "uvloop", path).startswith("uvloop")
    assert any("_loop_module" in name for _file, _line, name in pstats.Stats(str(path)).stats)  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_runpinger_writes_the_same_lines_on_either_loop(loop, eagle_simulator, make_household, start_pinger):
    for n in range(1, 4):
        add(eagle_simulator, make_household, f"00f00{n}")
    pinger = start_pinger("--once", env={"EAGLE_CLOUD_URL": eagle_simulator.cloud_url, "PINGER_EVENT_LOOP": loop})
    assert pinger.wait(timeout=30) == 0, pinger.stderr
    assert f"event loop: {loop}" in pinger.service_log
    lines = read_hour_files(pinger.log_root)
    assert sorted(lines) == ["00f001", "00f002", "00f003"]
    assert all(len(found) == 1 and found[0]["ok"] for found in lines.values())


@pytest.mark.django_db(transaction=True)
def test_runpinger_refuses_an_unknown_loop(start_pinger):
    pinger = start_pinger("--once", env={"PINGER_EVENT_LOOP": "tokio"})
    assert pinger.wait(timeout=30) != 0
    assert "PINGER_EVENT_LOOP must be one of uvloop, asyncio" in pinger.stderr
    assert "Traceback" not in pinger.stderr
