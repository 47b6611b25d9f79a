"""The demo's households: how `make demo` makes them, and how they are told apart from real ones.

A demo household has a cloud id dd0000, dd0001, ..., the e-mail demo-<cloud id>@example.org and the notes below,
all three together: a real EAGLE may well have a cloud id starting with dd, but not with that e-mail and notes.
The demo runs in its own data folder (DATA_DIR=data/demo, marked by iseif.service_env.DEMO_MARKER); demo_setup
refuses to run anywhere else, so fake households never reach a real install's database again. Installs that ran
an older `make demo` can remove the ones left behind with `manage.py remove_demo_households`.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from iseif.service_env import DEMO_MARKER
from loggerapp.models import Household

DEMO_NOTES = "Created by `make demo`; served by the EAGLE simulator."
MAX_DEMO_HOUSEHOLDS = 0x10000  # dd0000 ... ddffff


def demo_cloud_id(number: int) -> str:
    return f"dd{number:04x}"


def demo_email(cloud_id: str) -> str:
    return f"demo-{cloud_id}@example.org"


def is_demo_household(household: Household) -> bool:
    cloud_id = household.cloud_id
    return (
        len(cloud_id) == 6
        and cloud_id.startswith("dd")
        and household.user_email == demo_email(cloud_id)
        and household.notes == DEMO_NOTES
    )


def demo_households() -> list[Household]:
    candidates = Household.objects.filter(cloud_id__startswith="dd", notes=DEMO_NOTES).order_by("cloud_id")
    return [household for household in candidates if is_demo_household(household)]


def in_demo_folder() -> bool:
    """True when this process runs with a demo's environment: its marked data folder and its own SQLite file."""
    data_dir = Path(settings.DATA_DIR)
    database = settings.DATABASES["default"]
    return (
        (data_dir / DEMO_MARKER).is_file()
        and database["ENGINE"] == "django.db.backends.sqlite3"
        and Path(database["NAME"]).parent == data_dir
    )
