"""manage.py rotation_worker: the RQ worker of a host, on the shared queue and on this host's upload queue."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run an RQ worker (with RQ's scheduler) on ROTATION_QUEUE and this host's ROTATION_HOST_QUEUE, so that the "
        "hourly upload fanned out by the scheduler reaches this host's hour files (docs/fleet.md)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
        parser.add_argument("--no-scheduler", action="store_true", help="do not run RQ's scheduler in this worker")

    def handle(self, *args, **options) -> None:
        queues = list(dict.fromkeys([settings.ROTATION_QUEUE, settings.ALERT_QUEUE, settings.ROTATION_HOST_QUEUE]))
        call_command("rqworker", *queues, burst=options["burst"], with_scheduler=not options["no_scheduler"])
