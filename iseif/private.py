"""Private files and folders: what the logger creates on disk, only its own user (or its group) can read.

Why (issue 11): the hour files say when people are home, the service logs name households and gateways, the
SQLite database holds sessions and encrypted passwords. Under the usual umask 022 they were created 0644 inside
0755 folders, and another local user read a session key from the database and opened the admin. So every place
that creates one of them asks this module, which does not depend on the umask of whoever started the process:

- folders (DATA_DIR, LOG_ROOT and the folders under it, the archive folder) are made 0700, each missing level,
  exactly (a mkdir mode passes through the umask, so the mode is set again after creating);
- files (the SQLite database, hour files, archive files, service logs, the local secrets) are created 0600.

``DATA_GROUP_READABLE=1`` makes them 0750 / 0640 instead, for a deployment where a group (backups, analysts) reads
them. Folders and files that already exist keep their mode: an operator may have chosen it (``manage.py doctor``
warns about any that others can read). No Django import here: settings.py and scripts/iseif use it too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE, PRIVATE_FILE_MODE = 0o700, 0o600
GROUP_DIR_MODE, GROUP_FILE_MODE = 0o750, 0o640
_TRUE = {"1", "true", "yes", "on"}


def group_readable() -> bool:
    return os.environ.get("DATA_GROUP_READABLE", "").strip().lower() in _TRUE


def dir_mode() -> int:
    return GROUP_DIR_MODE if group_readable() else PRIVATE_DIR_MODE


def file_mode() -> int:
    return GROUP_FILE_MODE if group_readable() else PRIVATE_FILE_MODE


def make_private_dir(path: Path | str, mode: int | None = None) -> Path:
    """Create ``path`` and its missing parents, each exactly ``mode`` (default: dir_mode()); existing ones are
    left as they are. Safe against another process creating the same folder at the same time."""
    path = Path(path)
    mode = dir_mode() if mode is None else mode
    missing: list[Path] = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            continue  # made meanwhile by someone else (or a file: the caller's next step says so)
        os.chmod(folder, mode)  # the umask may have taken bits away; a mode of our own is exact
    return path


def open_private(path: Path | str, flags: int, mode: int | None = None) -> int:
    """``os.open`` creating the file with ``mode`` (default: file_mode()). The umask can only take bits away,
    so a new file is never more open than asked."""
    return os.open(path, flags | os.O_CREAT, file_mode() if mode is None else mode)


def create_private_file(path: Path | str) -> Path:
    """Make sure ``path`` exists, created private if it did not (an empty SQLite file is an empty database)."""
    os.close(open_private(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
    return Path(path)


def readable_by_others(path: Path | str) -> bool:
    """True when users other than the owner (and the group, with DATA_GROUP_READABLE) can read ``path``."""
    allowed = dir_mode() if Path(path).is_dir() else file_mode()
    return bool(os.stat(path).st_mode & 0o777 & ~allowed)
