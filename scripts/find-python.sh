#!/usr/bin/env sh
# Prints the path of a Python >= 3.12 (Django 6 needs it), or explains and fails. Tried in order: $PYTHON,
# the versioned and plain names on PATH, then the versions pyenv keeps under $PYENV_ROOT (or `pyenv root`),
# which need not be on PATH. Nothing here names a folder of one particular machine.
candidates="${PYTHON:-} python3.13 python3.12 python3"
root=${PYENV_ROOT:-}
[ -n "$root" ] || ! command -v pyenv >/dev/null 2>&1 || root=$(pyenv root 2>/dev/null || true)
if [ -n "$root" ]; then
    candidates="$candidates $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -r | tr '\n' ' ')"
fi
for candidate in $candidates; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
        "$candidate" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done
echo "error: Python 3.12 or newer is required (Django 6); install python3.12 or set PYTHON=/path/to/python" >&2
exit 1
