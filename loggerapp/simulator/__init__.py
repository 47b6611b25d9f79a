"""The EAGLE simulator: a fast aiohttp server speaking the cloud relay, EAGLE-100 and EAGLE-200 protocols, with
fault injection, so tests, benchmarks and demos see data flow without hardware.

Modules: ``meter`` (demand curves and readings, pure), ``answers`` (the bodies, pure), ``households`` (who is
simulated and where they come from), ``faults``, ``server`` (the aiohttp application and its state),
``testing`` (``run_simulator``, the server in a background thread), ``command`` (what ``manage.py
eagle_simulator`` runs). Django is only imported for ``--from-db``.
"""

from loggerapp.simulator.faults import FAULTS, Fault
from loggerapp.simulator.households import SimHousehold
from loggerapp.simulator.server import Simulator

__all__ = ["FAULTS", "Fault", "SimHousehold", "Simulator"]
