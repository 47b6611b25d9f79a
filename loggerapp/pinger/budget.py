"""Two budgets of polls in flight, so that households that time out never crowd out the healthy ones.

One semaphore (``PINGER_MAX_IN_FLIGHT``) alone lets slow households take every slot: each holds one for a whole
poll deadline (about 7 s), so with the defaults about 1,536 households timing out at once kept healthy ones
waiting. The rule: a household whose last poll failed as ``unreachable`` (no answer in time, refused, reset) polls
within the failing budget (``PINGER_MAX_SLOW_IN_FLIGHT``); every other household within the main one. However
many households fail, the main budget holds only healthy households' polls, each a fraction of a second. A
household that just started timing out takes a main slot for that one poll (at most one poll deadline); its
next poll is in the failing budget. A failing household waiting for its budget keeps its tick "in flight", so
its later ticks are skipped (and written as ``skipped`` lines): it is polled less often, the others never later.
"""

from __future__ import annotations

import asyncio

from loggerapp.models import Status
from loggerapp.pinger.decisions import HouseholdState


def is_failing(state: HouseholdState) -> bool:
    """Whether a household polls within the failing budget (module docstring)."""
    return state.status == Status.UNREACHABLE


class PollBudget:
    def __init__(self, healthy: asyncio.Semaphore, failing_size: int) -> None:
        self.healthy = healthy
        self.failing = asyncio.Semaphore(max(1, failing_size))

    def for_state(self, state: HouseholdState) -> asyncio.Semaphore:
        return self.failing if is_failing(state) else self.healthy
