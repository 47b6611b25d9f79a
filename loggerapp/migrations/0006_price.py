"""Issue 14: the ledger records every kind of hour file (hourfiles.layout.FILE_KINDS), not only the demand file.

Existing rows are demand files (the only kind until now). A household-hour has one row per kind, so the unique
constraint gains the kind; its first two columns stay cloud id and hour, which the status page's query uses.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loggerapp", "0005_household_https_and_address_rule"),
    ]

    operations = [
        migrations.AddField(
            model_name="hourfile",
            name="kind",
            field=models.CharField(default="demand", max_length=16),
        ),
        migrations.RemoveConstraint(
            model_name="hourfile",
            name="hourfile_unique_cloud_id_hour",
        ),
        migrations.AddConstraint(
            model_name="hourfile",
            constraint=models.UniqueConstraint(
                fields=("cloud_id", "hour", "kind"), name="hourfile_unique_cloud_id_hour_kind"
            ),
        ),
    ]
