"""State of the running services: pinger heartbeats and alert memory."""

from __future__ import annotations

from django.db import models


class PingerHeartbeat(models.Model):
    """Written by each running pinger (one row per shard) so that /healthz can tell it is alive."""

    name = models.CharField(max_length=100, primary_key=True, help_text="hostname:shard")
    beat_at = models.DateTimeField()
    interval = models.FloatField(default=6.0)
    households = models.IntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


class PingerMember(models.Model):
    """One running fleet-mode pinger (see loggerapp/fleet/membership.py): written every FLEET_HEARTBEAT_SECONDS
    with the database's clock; the live members share the households by rendezvous hashing."""

    member_id = models.CharField(max_length=120, primary_key=True, help_text="host:pid:random")
    host = models.CharField(max_length=100)
    pid = models.IntegerField(default=0)
    started_at = models.DateTimeField()
    active_from = models.DateTimeField(help_text="when it starts owning households (announced ahead)")
    active_until = models.DateTimeField(null=True, blank=True, help_text="when it stops (a clean stop, announced)")
    last_seen = models.DateTimeField(db_index=True)
    households = models.IntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.member_id


class AlertState(models.Model):
    """Remembers which alerts are firing so that each sends one mail when it starts and one when it ends."""

    key = models.CharField(max_length=200, primary_key=True)
    firing = models.BooleanField(default=False)
    since = models.DateTimeField(null=True, blank=True)
    last_sent = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.key
