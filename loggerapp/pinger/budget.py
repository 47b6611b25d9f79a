"""Two budgets of polls in flight, so that households that time out never crowd out the healthy ones.

One limit of polls in flight (``PINGER_MAX_IN_FLIGHT``) alone lets slow households take every slot: each holds
one for a whole poll deadline (about 7 s), so with the defaults about 1,536 households timing out at once kept
healthy ones waiting. The rule: **a household polls within the main budget only while its last poll succeeded** (status
``ok``); every other household (never polled yet, unreachable, timing out, bad answers, bad credentials) polls
within the failing budget (``PINGER_MAX_SLOW_IN_FLIGHT``). However many households fail, the main budget holds
only the polls of households that answered last time, each a fraction of a second.

What it costs: a household new to the study waits in the failing budget until its first success (at a first
start of a whole study, 256 slots still run 1,280 polls/s at 200 ms); statuses are stored, so a restart puts
each household straight back in its budget. A household that answered last time and now times out holds a main
slot for that one poll (at most one poll deadline) before it moves. A failing household waiting for a slot keeps
its tick in flight, so its later ticks are skipped (and written as ``skipped`` lines): failing households are
polled less often when there are more of them than their budget, healthy ones never later.
"""

from __future__ import annotations

from loggerapp.models import Status
from loggerapp.pinger.decisions import HouseholdState
from loggerapp.pinger.limiter import InFlightLimit


def is_failing(state: HouseholdState) -> bool:
    """Whether a household polls within the failing budget: its last poll did not succeed (module docstring)."""
    return state.status != Status.OK


class PollBudget:
    def __init__(self, healthy: InFlightLimit, failing_size: int) -> None:
        self.healthy = healthy
        self.failing = InFlightLimit(max(1, failing_size))

    def for_state(self, state: HouseholdState) -> InFlightLimit:
        return self.failing if is_failing(state) else self.healthy
