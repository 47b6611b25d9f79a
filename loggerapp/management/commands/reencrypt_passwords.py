"""manage.py reencrypt_passwords: re-encrypt every stored EAGLE password under the newest key."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from loggerapp.models import Household


class Command(BaseCommand):
    help = "After putting a new key first in FIELD_ENCRYPTION_KEY, re-encrypt all passwords with it."

    def handle(self, *args, **options) -> None:
        count = 0
        # Reading decrypts with whichever key matches; writing encrypts with the first (newest) key.
        for pk, password in Household.objects.values_list("pk", "password").iterator():
            Household.objects.filter(pk=pk).update(password=password)
            count += 1
        self.stdout.write(f"{count} password(s) re-encrypted under the newest key.")
