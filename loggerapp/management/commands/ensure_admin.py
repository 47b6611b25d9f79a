"""manage.py ensure_admin: on first run, create a superuser so that a new install can sign in at once.

Uses DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL when set; otherwise creates `admin` with a random
password, prints it once and keeps it in DATA_DIR/admin-password (mode 0600) until someone changes it.
Does nothing when a superuser already exists.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from iseif.private import make_private_dir


class Command(BaseCommand):
    help = "Create the first superuser if there is none (used by `make run`)."

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write("Admin user exists; sign in with it.")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, email=email, password=password)
        if generated:
            path = settings.DATA_DIR / "admin-password"
            make_private_dir(path.parent)  # DATA_DIR, 0700 (iseif/private.py)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            self.stdout.write(f"Created admin user {username!r} with password {password} (also in {path}).")
        else:
            self.stdout.write(f"Created admin user {username!r} from DJANGO_SUPERUSER_*.")
