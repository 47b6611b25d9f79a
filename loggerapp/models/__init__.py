"""The logger's records: households and their statistics, the upload ledger, API tokens, service state."""

from loggerapp.models.household import Household, HouseholdStats, Protocol, Status
from loggerapp.models.ledger import HourFile
from loggerapp.models.service import AlertState, PingerHeartbeat, PingerMember
from loggerapp.models.tokens import ApiToken

__all__ = [
    "AlertState",
    "ApiToken",
    "HourFile",
    "Household",
    "HouseholdStats",
    "PingerHeartbeat",
    "PingerMember",
    "Protocol",
    "Status",
]
