"""The EAGLE client: sans-IO protocol code (legacy.py, eagle200.py) driven by two thin transports.

See docs/eagle-protocol.md for the protocols and README (EAGLE client section) for the decisions.
"""

from loggerapp.eagle.client import AsyncEagleClient, SyncEagleClient
from loggerapp.eagle.errors import BadCredentials, BadResponse, EagleError, MeterNotJoined, Unreachable
from loggerapp.eagle.models import EagleTarget, Price, PriceAndSummation, Reading, Summation

__all__ = [
    "AsyncEagleClient",
    "BadCredentials",
    "BadResponse",
    "EagleError",
    "EagleTarget",
    "MeterNotJoined",
    "Price",
    "PriceAndSummation",
    "Reading",
    "Summation",
    "SyncEagleClient",
    "Unreachable",
]
