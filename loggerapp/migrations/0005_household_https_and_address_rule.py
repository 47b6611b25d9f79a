"""The gateway address is one host and an optional port (loggerapp/eagle/addresses.py); HTTPS becomes its own field.

Addresses saved before held a scheme for an EAGLE 3 (``https://...``), and could hold a path or a pasted
``user:password@``, which the client used to cut off when it built the URL. This migration does the same once,
in the data: the scheme becomes the ``https`` flag, the path and the user part go, so every existing household
keeps talking to the gateway it talked to before. Anything still not a valid address is left as it is: the
admin shows why when the household is next edited, and the client refuses it (unreachable) instead of guessing.
"""

from django.db import migrations, models

import loggerapp.validators


def split_scheme(apps, schema_editor):
    Household = apps.get_model("loggerapp", "Household")
    for household in Household.objects.exclude(address="").only("pk", "address", "https"):
        address, https = household.address.strip(), False
        lowered = address.lower()
        if lowered.startswith("https://"):
            address, https = address[8:], True
        elif lowered.startswith("http://"):
            address = address[7:]
        address = address.split("/", 1)[0].rpartition("@")[2]
        if (address, https) != (household.address, household.https):
            household.address, household.https = address, https
            household.save(update_fields=["address", "https"])


def join_scheme(apps, schema_editor):
    Household = apps.get_model("loggerapp", "Household")
    for household in Household.objects.filter(https=True).only("pk", "address", "cloud_id"):
        household.address = f"https://{household.address or f'eagle-{household.cloud_id}.local'}"
        household.save(update_fields=["address"])


class Migration(migrations.Migration):
    dependencies = [
        ("loggerapp", "0004_address_help_text"),
    ]

    operations = [
        migrations.AddField(
            model_name="household",
            name="https",
            field=models.BooleanField(
                default=False,
                help_text="Talk HTTPS to a local gateway (an EAGLE 3; its self-signed certificate is accepted).",
                verbose_name="HTTPS",
            ),
        ),
        migrations.AlterField(
            model_name="household",
            name="address",
            field=models.CharField(
                blank=True,
                help_text="Host[:port] of a local EAGLE (eagle100/eagle200): a name, an IPv4 address or an [IPv6] "
                "address, nothing else; blank means eagle-{cloud id}.local, e.g. eagle-002506.local.",
                max_length=255,
                validators=[loggerapp.validators.validate_gateway_address],
            ),
        ),
        migrations.RunPython(split_scheme, join_scheme),
    ]
