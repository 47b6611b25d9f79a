"""Migration 0005: existing addresses keep reaching the gateway they reached, in the one spelling the rule accepts.

Before it, an EAGLE 3 was an ``https://`` prefix and the client cut a pasted path or ``user:password@`` off when it
built the URL. The migration does that once, in the data, on the real database: backwards to 0004, rows as they
were saved then, forwards again.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from loggerapp.eagle.wire import local_base_url

BEFORE = ("loggerapp", "0004_address_help_text")
AFTER = ("loggerapp", "0005_household_https_and_address_rule")

# address as saved before -> (address, https) after, and the URL the client built before and builds now
ROWS = {
    "0a0001": ("https://192.168.1.20", ("192.168.1.20", True)),
    "0a0002": ("HTTPS://eagle3.lan:443/cgi-bin/post_manager", ("eagle3.lan:443", True)),
    "0a0003": ("http://10.0.0.5/", ("10.0.0.5", False)),
    "0a0004": ("admin:hunter2@10.0.0.6:80", ("10.0.0.6:80", False)),
    "0a0005": ("  10.0.0.7:8080 ", ("10.0.0.7:8080", False)),
    "0a0006": ("eagle-0a0006.local", ("eagle-0a0006.local", False)),
    "0a0007": ("", ("", False)),
}
URLS = {
    "0a0001": "https://192.168.1.20",
    "0a0002": "https://eagle3.lan:443",
    "0a0003": "http://10.0.0.5",
    "0a0004": "http://10.0.0.6:80",
    "0a0005": "http://10.0.0.7:8080",
    "0a0006": "http://eagle-0a0006.local",
    "0a0007": "http://eagle-0a0007.local",
}


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    executor.loader.build_graph()
    return executor.loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True)
def test_schemes_become_the_https_flag_and_pasted_parts_go():
    apps = _migrate(BEFORE)
    old = apps.get_model("loggerapp", "Household")
    for cloud_id, (address, _) in ROWS.items():
        old.objects.create(cloud_id=cloud_id, protocol="eagle200", address=address, password="")
    try:
        apps = _migrate(AFTER)
        new = apps.get_model("loggerapp", "Household")
        migrated = {row.cloud_id: (row.address, row.https) for row in new.objects.all()}
        assert migrated == {cloud_id: after for cloud_id, (_, after) in ROWS.items()}
        for cloud_id, (address, https) in migrated.items():
            assert local_base_url(address, cloud_id, https)[0] == URLS[cloud_id]

        apps = _migrate(BEFORE)  # and back: the scheme returns to the address
        back = {row.cloud_id: row.address for row in apps.get_model("loggerapp", "Household").objects.all()}
        assert back["0a0001"] == "https://192.168.1.20" and back["0a0003"] == "10.0.0.5"
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
