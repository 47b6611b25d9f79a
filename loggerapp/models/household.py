"""Households (one per EAGLE gateway) and the statistics the pinger keeps about them.

A stored password belongs to the gateway it was saved for. The gateway is named by the *connection* fields
(``CONNECTION_FIELDS``: protocol, address, HTTPS and cloud id; a blank local address means eagle-{cloud id}.local;
HTTPS is there because turning it off would send the install code in clear),
so changing any of them without giving the password again is refused (``Household.clean``, ``save`` and the
queryset's ``update``/``bulk_update``): otherwise whoever may edit a household could point it at their own
host and have the logger send them the stored password. Refusing, rather than clearing the password, loses
nothing: the edit is simply not saved, with a message saying what to do. "Giving the password" means assigning
it (even the same value) since the row was loaded; a blank admin field does not assign it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from loggerapp.fields import EncryptedTextField
from loggerapp.validators import normalize_cloud_id, validate_cloud_id, validate_gateway_address


class Protocol(models.TextChoices):
    # Short labels: they fill a column of the admin's household list.
    CLOUD = "cloud", "cloud relay"
    EAGLE100 = "eagle100", "EAGLE-100"
    EAGLE200 = "eagle200", "EAGLE-200/3"


class Status(models.TextChoices):
    """What the last poll said. The error kinds of loggerapp.eagle use the same values."""

    NEVER_POLLED = "never_polled", "never polled"
    OK = "ok", "ok"
    UNREACHABLE = "unreachable", "unreachable"
    BAD_CREDENTIALS = "bad_credentials", "bad credentials"
    METER_NOT_JOINED = "meter_not_joined", "meter not joined"
    BAD_RESPONSE = "bad_response", "bad response"


CONNECTION_FIELDS = ("protocol", "address", "https", "cloud_id")
REBIND_MESSAGE = (
    "The protocol, address, HTTPS or cloud id changed: enter the password or install code again. The stored one "
    "is only ever sent to the gateway it was saved for."
)


class CredentialsNotRebound(ValidationError):
    """A connection field changed while the stored password was kept (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__({"password": [REBIND_MESSAGE]}, code="password_again")


class HouseholdQuerySet(models.QuerySet):
    """Bulk writes follow the same rule as save(): no new connection for a password without the password."""

    def update(self, **kwargs: Any) -> int:
        _refuse_unbound(kwargs)
        return super().update(**kwargs)

    def bulk_update(self, objs: Iterable[Household], fields: Iterable[str], batch_size: int | None = None) -> int:
        _refuse_unbound(list(fields))
        return super().bulk_update(objs, fields, batch_size=batch_size)


def _refuse_unbound(fields: Iterable[str]) -> None:
    names = set(fields)
    if names & set(CONNECTION_FIELDS) and "password" not in names:
        raise CredentialsNotRebound()


class Household(models.Model):
    cloud_id = models.CharField(
        "cloud id",
        max_length=6,
        unique=True,
        validators=[validate_cloud_id],
        help_text="Six hex digits printed on the EAGLE, leading zeros kept (e.g. 002506).",
    )
    user_email = models.EmailField(
        "account e-mail", blank=True, help_text="The Rainforest cloud account (cloud protocol only)."
    )
    # The EAGLE cloud password or the device's install code. Encrypted at rest; never rendered after saving.
    password = EncryptedTextField("password or install code", blank=True, default="")
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.CLOUD)
    address = models.CharField(
        max_length=255,
        blank=True,
        validators=[validate_gateway_address],
        help_text="Host[:port] of a local EAGLE (eagle100/eagle200): a name, an IPv4 address or an [IPv6] address, "
        "nothing else; blank means eagle-{cloud id}.local, e.g. eagle-002506.local.",
    )
    https = models.BooleanField(
        "HTTPS",
        default=False,
        help_text="Talk HTTPS to a local gateway (an EAGLE 3; its self-signed certificate is accepted).",
    )
    meter_address = models.CharField(
        max_length=32,
        blank=True,
        help_text="EAGLE-200 only: the meter's HardwareAddress, when the gateway lists more than one meter.",
    )
    active = models.BooleanField(default=True, help_text="Only active households are polled.")
    label = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = HouseholdQuerySet.as_manager()

    class Meta:
        ordering = ["cloud_id"]
        indexes = [
            # The pinger's refresh: Household.objects.filter(active=True)
            models.Index(fields=["active"], name="household_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.cloud_id} {self.label}".strip()

    def __repr__(self) -> str:  # never include the password
        return f"<Household {self.cloud_id} {self.protocol}>"

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "password":  # an assignment, even of the same value, is a password given (module docstring)
            self.__dict__["_password_given"] = True
        super().__setattr__(name, value)

    def save(self, *args, **kwargs) -> None:
        self.cloud_id = normalize_cloud_id(self.cloud_id)
        validate_cloud_id(self.cloud_id)  # also for code paths that skip full_clean()
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "address" in update_fields:
            # The same for the address (the logger connects to it); a save of other fields only does not make a row
            # saved before the address rule unsavable (the transports refuse such an address anyway).
            validate_gateway_address(self.address)
        if not self.credentials_rebound():
            raise CredentialsNotRebound()
        super().save(*args, **kwargs)
        self._mark_saved()

    def clean_fields(self, exclude=None) -> None:
        self.cloud_id = normalize_cloud_id(self.cloud_id)  # "0A25F6" is the same EAGLE as "0a25f6"
        given = self.__dict__.get("_password_given")
        super().clean_fields(exclude=exclude)
        if given is not None:  # Django sets every field back to its cleaned value: that is not giving a password
            self.__dict__["_password_given"] = given

    def clean(self) -> None:
        if self.protocol == Protocol.CLOUD and not self.user_email:
            raise ValidationError({"user_email": "The cloud relay needs the account e-mail."})
        if not self.credentials_rebound():
            raise CredentialsNotRebound()

    # --- the password belongs to its gateway (module docstring) ----------------------------------------
    @classmethod
    def from_db(cls, db, field_names, values, **kwargs: Any) -> Household:
        household = super().from_db(db, field_names, values, **kwargs)
        household._mark_saved()
        return household

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        """Values read from the database are not a password given by someone (nor a new connection)."""
        given = self.__dict__.get("_password_given", False)
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        if fields is None:
            self._mark_saved()
            return
        self.__dict__["_password_given"] = given  # a deferred field loaded on access, not an assignment
        saved = self.__dict__.setdefault("_saved_connection", {})
        for name in set(fields) & set(CONNECTION_FIELDS):
            saved[name] = _comparable(self.__dict__[name])

    def _mark_saved(self) -> None:
        self.__dict__["_saved_connection"] = {
            name: _comparable(self.__dict__[name]) if name in self.__dict__ else _NOT_LOADED
            for name in CONNECTION_FIELDS
        }
        self.__dict__["_password_given"] = False

    def credentials_rebound(self) -> bool:
        """False when a connection field differs from the saved row while the stored password was kept."""
        saved = self.__dict__.get("_saved_connection")
        if saved is None or self.__dict__.get("_password_given", True):
            return True  # a new household, or a password given since the row was loaded
        if "password" in self.__dict__ and not self.__dict__["password"]:
            return True  # no stored password that could leak
        return all(
            saved.get(name, _NOT_LOADED) == _comparable(self.__dict__[name])
            for name in CONNECTION_FIELDS
            if name in self.__dict__  # not loaded and not assigned: unchanged
        )


_NOT_LOADED = object()  # a connection field deferred when the row was loaded: any value set later is a change


def _comparable(value: Any) -> Any:
    """Connection values as the client uses them: the address stripped, the cloud id lower-cased."""
    return value.strip().lower() if isinstance(value, str) else value


class HouseholdStats(models.Model):
    """Logging statistics, kept beside the household so that the pinger's batched writes never race an
    admin edit of the household itself (a full save would put stale numbers back)."""

    household = models.OneToOneField(Household, on_delete=models.CASCADE, primary_key=True, related_name="stats")
    # Names the study has always used.
    total_events_logged = models.BigIntegerField(default=0)
    first_timestamp = models.DateTimeField(null=True, blank=True)
    last_timestamp = models.DateTimeField(null=True, blank=True)
    # What operations need.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEVER_POLLED)
    last_demand_kw = models.FloatField(null=True, blank=True)
    last_meter_time = models.DateTimeField(null=True, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_error_kind = models.CharField(max_length=20, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.IntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "household stats"
        indexes = [
            # Admin and API filters: HouseholdStats.objects.filter(status=...)
            models.Index(fields=["status"], name="stats_status_idx"),
        ]

    def __str__(self) -> str:
        return "logging statistics"
