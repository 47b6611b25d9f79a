"""The upload ledger: one row per household-hour file, from first sight to verified upload."""

from __future__ import annotations

from django.db import models

from loggerapp.hourfiles.lines import coverage, lines_per_hour


class HourFile(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "pending"
        UPLOADING = "uploading", "uploading"
        UPLOADED = "uploaded", "uploaded"
        FAILED = "failed", "failed"

    household = models.ForeignKey(
        "loggerapp.Household", null=True, blank=True, on_delete=models.SET_NULL, related_name="hour_files"
    )
    # Kept as well as the foreign key: the file outlives a deleted household record.
    cloud_id = models.CharField(max_length=6)
    # Which kind of hour file (hourfiles.layout.FILE_KINDS): the demand file, or the price file beside it.
    kind = models.CharField(max_length=16, default="demand")
    hour = models.DateTimeField(help_text="Start of the UTC hour the file covers.")
    # lines, ok_lines, bytes and sha256 describe what the archive holds for this hour (after any merge).
    lines = models.IntegerField(default=0)
    ok_lines = models.IntegerField(default=0, help_text="Lines holding a reading (not a failed poll).")
    bytes = models.BigIntegerField(default=0, help_text="Size of the archived lines (uncompressed).")
    stored_bytes = models.BigIntegerField(
        default=0, help_text="Size of the object as stored: smaller than bytes when ARCHIVE_GZIP is on."
    )
    sha256 = models.CharField(max_length=64, blank=True)
    key = models.CharField(max_length=512, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True)
    attempts = models.IntegerField(default=0)
    merged = models.BooleanField(default=False, help_text="The stored object was merged with an existing one.")
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-hour", "cloud_id"]
        constraints = [
            models.UniqueConstraint(fields=["cloud_id", "hour", "kind"], name="hourfile_unique_cloud_id_hour_kind"),
        ]
        indexes = [
            # The rotation's retry pass and the admin filter: HourFile.objects.filter(state=...)
            models.Index(fields=["state", "hour"], name="hourfile_state_hour_idx"),
            # Per-household coverage: HourFile.objects.filter(household=..., hour__gte=...)
            models.Index(fields=["household", "hour"], name="hourfile_household_hour_idx"),
        ]

    def __str__(self) -> str:
        kind = "" if self.kind == "demand" else f" {self.kind}"
        return f"{self.cloud_id} {self.hour:%Y-%m-%d-%H}{kind}"

    @property
    def coverage(self) -> float:
        """Readings logged out of those expected in an hour (hourfiles.lines.lines_per_hour), capped at 1."""
        return coverage(self.ok_lines, lines_per_hour())
