"""Households (one per EAGLE gateway) and the statistics the pinger keeps about them."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from loggerapp.fields import EncryptedTextField
from loggerapp.validators import normalize_cloud_id, validate_cloud_id


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
        help_text="Host[:port] of a local EAGLE (eagle100/eagle200); blank means eagle-<cloud id>.local. "
        "Prefix https:// for an EAGLE 3.",
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

    def save(self, *args, **kwargs) -> None:
        self.cloud_id = normalize_cloud_id(self.cloud_id)
        validate_cloud_id(self.cloud_id)  # also for code paths that skip full_clean()
        super().save(*args, **kwargs)

    def clean_fields(self, exclude=None) -> None:
        self.cloud_id = normalize_cloud_id(self.cloud_id)  # "0A25F6" is the same EAGLE as "0a25f6"
        super().clean_fields(exclude=exclude)

    def clean(self) -> None:
        if self.protocol == Protocol.CLOUD and not self.user_email:
            raise ValidationError({"user_email": "The cloud relay needs the account e-mail."})


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
