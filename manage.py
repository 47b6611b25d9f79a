#!/usr/bin/env python
"""Django's command-line utility for the ISEIF Rainforest Logger.

Run it through `make manage ARGS="..."` or `scripts/iseif manage ...` to get the environment of the running
service (see iseif/service_env.py). Run bare, a missing or malformed setting is reported in one line that names it
and says how to fix it, instead of a traceback from deep inside Django's start-up.
"""

import os
import sys

_WITHOUT_SETTINGS = {"help", "--help", "-h", "version", "--version"}  # Django answers these without settings


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iseif.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        if sys.argv[1:2] and sys.argv[1] not in _WITHOUT_SETTINGS:
            # Load the settings first: Django would otherwise run some commands (shell) without them, and others
            # end in a traceback. Every setting is read and checked at import (iseif/settings.py).
            settings.INSTALLED_APPS  # noqa: B018
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # Our settings raise it with a message that names the variable and how to give it.
        sys.stderr.write("error: " + " ".join(str(exc).split()) + "\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
