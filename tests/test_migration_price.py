"""Migration 0006_price: the ledger's rows from before are demand files, and an hour may now hold one row per kind.

On the real database: back to 0005, a row saved then, forwards again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("loggerapp", "0005_household_https_and_address_rule")
AFTER = ("loggerapp", "0006_price")
HOUR = datetime(2026, 1, 5, 4, tzinfo=UTC)


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    executor.loader.build_graph()
    return executor.loader.project_state([target]).apps


@pytest.fixture
def back_to_the_latest_migration():
    """Later tests need every migration applied, the ones after 0006 included."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_migration")
def test_rows_from_before_are_demand_files_and_a_price_row_fits_beside_them():
    before = _migrate(BEFORE)
    before.get_model("loggerapp", "HourFile").objects.create(cloud_id="002506", hour=HOUR, key="k/demand", lines=600)
    after = _migrate(AFTER)
    HourFile = after.get_model("loggerapp", "HourFile")
    assert list(HourFile.objects.values_list("cloud_id", "kind", "lines")) == [("002506", "demand", 600)]
    HourFile.objects.create(cloud_id="002506", hour=HOUR, kind="price", key="k/price")
    with pytest.raises(IntegrityError), transaction.atomic():  # still one row per file
        HourFile.objects.create(cloud_id="002506", hour=HOUR, kind="price", key="k/again")
    assert HourFile.objects.filter(cloud_id="002506", hour=HOUR).count() == 2
