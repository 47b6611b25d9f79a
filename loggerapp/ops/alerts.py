"""Alerts by e-mail: one mail when an alert starts, one when it recovers, nothing in between.

What fires (each alert has a key; AlertState remembers which keys are firing):
- ``silent:<cloud_id>``: an active household without a successful reading (HouseholdStats.last_timestamp)
  for ALERT_SILENCE_MINUTES; a household never polled gets the same time from its creation.
- ``pinger``: a pinger heartbeat is stale, or none is left (health.check_pinger).
- ``disk``: a pinger shard cannot write its hour files for lack of space (health.check_disk).
- ``scheduler``: a scheduled job (the hourly upload) has not run for two of its periods (health.check_scheduler).
  A dead scheduler also stops this alert job itself: /healthz is what notices that case.
- ``uploads``: a finished hour's file is still not uploaded ALERT_UPLOAD_FAILING_MINUTES after it was due
  (hour end + ROTATION_GRACE_SECONDS): ledger rows failed/pending/uploading, or files left on local disk that
  the ledger does not know (the upload job is not running at all). The count is rotation.backlog's, the same
  the status page shows.

How a run works (check_alerts):
1. Compute the alerts firing now.
2. Lock the alert memory (SELECT ... FOR UPDATE on one AlertState row), so that two runs at once (a slow run
   overlapping the next cron tick, or the RQ job and a cron user's command) never mail the same start twice.
3. Started = firing now but not remembered; recovered = remembered but not firing now. Each kind's starts go
   out as one mail (500 households going silent together is one mail, not 500), and likewise recoveries.
4. A kind's state is written only after its mail was sent: if the mail server is down, the next run tries
   again instead of forgetting the alert. With no ALERT_EMAILS configured, state is still recorded (and the
   report says nothing was mailed).
A flapping household cannot storm: it must stay silent ALERT_SILENCE_MINUTES before it fires again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone
from django.utils.timesince import timesince

from loggerapp.fleet.ops import silent_members
from loggerapp.hourfiles.layout import HOUR
from loggerapp.models import AlertState, HourFile, Household, Status
from loggerapp.ops.health import check_disk, check_pinger, check_scheduler
from loggerapp.ops.status import silent_q
from loggerapp.rotation.backlog import upload_backlog

logger = logging.getLogger(__name__)

LOCK_KEY = "_lock"
SUBJECT_PREFIX = "[ISEIF logger]"
KIND_SILENT, KIND_PINGER, KIND_UPLOADS, KIND_DISK, KIND_SCHEDULER = "silent", "pinger", "uploads", "disk", "scheduler"
KINDS = (KIND_PINGER, KIND_DISK, KIND_SCHEDULER, KIND_UPLOADS, KIND_SILENT)


@dataclass(frozen=True)
class Alert:
    key: str
    message: str

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]


@dataclass
class AlertReport:
    firing: list[Alert] = field(default_factory=list)
    started: list[Alert] = field(default_factory=list)
    recovered: list[Alert] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)  # subjects of the mails sent
    errors: list[str] = field(default_factory=list)
    mailed: bool = True  # False with --report-only or without recipients

    def summary(self) -> str:
        return (
            f"{len(self.firing)} firing, {len(self.started)} started, {len(self.recovered)} recovered, "
            f"{len(self.mails)} mail(s) sent" + (f", {len(self.errors)} error(s)" if self.errors else "")
        )

    def lines(self) -> list[str]:
        lines = [self.summary()]
        lines += [f"FIRING  {alert.key}: {alert.message}" for alert in self.firing]
        lines += [f"STARTED {alert.key}" for alert in self.started]
        lines += [f"RECOVERED {alert.key}: {alert.message}" for alert in self.recovered]
        lines += [f"MAILED  {subject}" for subject in self.mails]
        lines += [f"ERROR   {error}" for error in self.errors]
        return lines


# --- What is firing now --------------------------------------------------------------------------------------
def silent_households(now: datetime) -> list[Alert]:
    alerts = []
    for household in Household.objects.filter(silent_q(now), active=True).select_related("stats").order_by("cloud_id"):
        stats = getattr(household, "stats", None)
        last = stats.last_timestamp if stats else None
        text = f"no reading for {timesince(last, now)} (last {last:%Y-%m-%d %H:%M} UTC)" if last else "never read"
        if stats and stats.status != Status.OK:
            text += f"; status {Status(stats.status).label}"
            if stats.last_error:
                text += f": {stats.last_error[:160]}"
        name = f"{household.cloud_id} ({household.label})" if household.label else household.cloud_id
        alerts.append(Alert(f"{KIND_SILENT}:{household.cloud_id}", f"{name}: {text}"))
    return alerts


def stale_pinger(now: datetime) -> list[Alert]:
    result = check_pinger(now)
    return [] if result.ok else [Alert(KIND_PINGER, result.detail)]


def full_disk(now: datetime) -> list[Alert]:
    result = check_disk(now)
    return [] if result.ok else [Alert(KIND_DISK, result.detail)]


def late_scheduler(now: datetime) -> list[Alert]:
    result = check_scheduler(now)
    return [] if result.ok else [Alert(KIND_SCHEDULER, result.detail)]


def failing_uploads(now: datetime) -> list[Alert]:
    """Hour files not uploaded ALERT_UPLOAD_FAILING_MINUTES after they were due (rotation.backlog counts them)."""
    due_by = HOUR + timedelta(seconds=settings.ROTATION_GRACE_SECONDS)
    cutoff = now - due_by - timedelta(minutes=settings.ALERT_UPLOAD_FAILING_MINUTES)
    backlog = upload_backlog(before=cutoff)
    if not backlog.total or backlog.oldest is None:
        return []
    reasons = list(
        HourFile.objects.filter(state=HourFile.State.FAILED, hour__lt=cutoff)
        .exclude(reason="")
        .order_by("-updated")
        .values_list("reason", flat=True)[:20]
    )
    distinct = list(dict.fromkeys(reason[:200] for reason in reasons))[:3]
    message = (
        f"{backlog.total} hour file(s) not uploaded more than {settings.ALERT_UPLOAD_FAILING_MINUTES} min after "
        f"they were due ({', '.join(backlog.parts())}); oldest hour {backlog.oldest:%Y-%m-%d %H}:00 UTC"
    )
    if distinct:
        message += "; last reasons: " + " | ".join(distinct)
    return [Alert(KIND_UPLOADS, message)]


def current_alerts(now: datetime | None = None) -> list[Alert]:
    now = now or timezone.now()
    members = [Alert(key, message) for key, message in silent_members()]  # a fleet member gone (loggerapp/fleet)
    return [
        *stale_pinger(now),
        *members,
        *full_disk(now),
        *late_scheduler(now),
        *failing_uploads(now),
        *silent_households(now),
    ]


# --- Mails ---------------------------------------------------------------------------------------------------
def _subject(kind: str, alerts: list[Alert], recovered: bool) -> str:
    n = len(alerts)
    if kind == KIND_SILENT:
        what = alerts[0].key.split(":", 1)[1] if n == 1 else f"{n} households"
        verb = ("is" if n == 1 else "are") + (" reporting again" if recovered else " silent")
        return f"{SUBJECT_PREFIX} {what} {verb}"
    if kind == KIND_PINGER:
        return f"{SUBJECT_PREFIX} pinger heartbeat " + ("fresh again" if recovered else "stale")
    if kind == KIND_SCHEDULER:
        return f"{SUBJECT_PREFIX} scheduled jobs " + ("running again" if recovered else "late")
    if kind == KIND_DISK:
        return f"{SUBJECT_PREFIX} pinger disk " + ("writable again" if recovered else "full")
    return f"{SUBJECT_PREFIX} uploads " + ("recovered" if recovered else "failing")


def _body(kind: str, alerts: list[Alert], recovered: bool, now: datetime, context: str = "") -> str:
    limit = settings.ALERT_MAX_LISTED
    head = "Recovered" if recovered else "Started"
    lines = [f"{head} at {now:%Y-%m-%d %H:%M:%S} UTC.", ""]
    if context:
        lines += [context, ""]
    lines += [f"- {alert.message}" for alert in alerts[:limit]]
    if len(alerts) > limit:
        lines.append(f"... and {len(alerts) - limit} more (see the status page).")
    lines += ["", "One mail is sent when an alert starts and one when it ends; nothing is repeated in between."]
    return "\n".join(lines)


def _send(subject: str, body: str) -> None:
    EmailMessage(subject, body, None, list(settings.ALERT_EMAILS)).send()


# --- A run ---------------------------------------------------------------------------------------------------
def check_alerts(now: datetime | None = None, send: bool = True) -> AlertReport:
    """Compare what fires now with what was firing, mail the changes, remember them (see the module docstring).

    With send=False nothing is mailed nor written: the report says what a real run would do.
    """
    now = now or timezone.now()
    firing = current_alerts(now)
    report = AlertReport(firing=firing, mailed=send and bool(settings.ALERT_EMAILS))
    with transaction.atomic():
        if send:
            AlertState.objects.get_or_create(key=LOCK_KEY)
            AlertState.objects.select_for_update().get(key=LOCK_KEY)
        remembered = {state.key: state for state in AlertState.objects.filter(firing=True).exclude(key=LOCK_KEY)}
        current = {alert.key: alert for alert in firing}
        report.started = [alert for key, alert in current.items() if key not in remembered]
        report.recovered = [
            Alert(key, state.message) for key, state in sorted(remembered.items()) if key not in current
        ]
        if not send:
            return report
        pinger_context = ""
        if any(alert.kind == KIND_PINGER for alert in firing):
            pinger_context = "The pinger's heartbeat is stale too: that is the likely cause."
        for recovered, alerts in ((False, report.started), (True, report.recovered)):
            grouped: dict[str, list[Alert]] = defaultdict(list)
            for alert in alerts:
                grouped[alert.kind].append(alert)
            for kind in sorted(grouped, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS)):
                group = grouped[kind]
                subject = _subject(kind, group, recovered)
                context = pinger_context if kind == KIND_SILENT and not recovered else ""
                if report.mailed:
                    try:
                        _send(subject, _body(kind, group, recovered, now, context))
                    except Exception as exc:  # any mail backend's error: retried on the next run
                        logger.error("alert mail %r could not be sent", subject, exc_info=True)
                        report.errors.append(f"{subject}: {type(exc).__name__}")
                        continue
                    report.mails.append(subject)
                _remember(group, firing=not recovered, now=now, mailed=report.mailed)
    for line in report.lines()[1:]:
        logger.info("alerts: %s", line)
    return report


def _remember(alerts: list[Alert], firing: bool, now: datetime, mailed: bool) -> None:
    rows = [
        AlertState(
            key=alert.key,
            firing=firing,
            since=now,
            last_sent=now if mailed else None,
            message=alert.message[:2000],
        )
        for alert in alerts
    ]
    update = ["firing", "since", "last_sent", "message"] if firing else ["firing", "last_sent"]
    AlertState.objects.bulk_create(rows, update_conflicts=True, unique_fields=["key"], update_fields=update)


def run_alerts_job() -> str:
    """Entry point of the RQ cron job (loggerapp/ops/cron.py): one run, a one-line summary as the result."""
    from loggerapp.ops.scheduler import JOB_ALERTS, record_run

    record_run(JOB_ALERTS)
    return check_alerts().summary()
