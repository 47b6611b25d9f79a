"""manage.py wait_for_redis <command> [args]: run an RQ command that waits out Redis outages (ops/redis_wait.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from loggerapp.ops.redis_wait import RedisWaiter
from loggerapp.service_log import add_log_level_argument, set_log_level


class Command(BaseCommand):
    help = "Run a manage.py command (rqcron, rqworker) once Redis answers, and again whenever it comes back."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--poll", type=float, default=2.0, help="seconds between two PINGs while waiting")
        add_log_level_argument(parser)
        parser.add_argument("command", nargs=argparse.REMAINDER, help="the manage.py command and its arguments")

    def handle(self, *args, **options) -> None:
        set_log_level(options["log_level"])
        command = list(options["command"])
        if command[:1] == ["--"]:
            command = command[1:]
        if not command or command[0].startswith("-"):
            raise CommandError("name the manage.py command to run, e.g. wait_for_redis rqcron loggerapp.cron")
        if options["poll"] <= 0:
            raise CommandError("--poll must be a positive number of seconds")
        status = RedisWaiter(settings.REDIS_URL, command, poll=options["poll"]).run()
        if status < 0:  # the child ended by a signal: end by the same one, so supervisor reports it as it was
            signal.signal(-status, signal.SIG_DFL)
            os.kill(os.getpid(), -status)
        sys.exit(status)
