#!/usr/bin/env sh
# Prints the path of a Python >= 3.12 (Django 6 needs it), or explains and fails. The default python3 here is
# 3.11; pyenv installs may exist without being on PATH, so their usual places are tried too.
for candidate in "${PYTHON:-}" python3.13 python3.12 python3 \
    /root/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.12*/bin/python3.12 \
    /usr/local/bin/python3.13 /usr/local/bin/python3.12 /usr/bin/python3.13 /usr/bin/python3.12; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
        "$candidate" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done
echo "error: Python 3.12 or newer is required (Django 6); install python3.12 or set PYTHON=/path/to/python" >&2
exit 1
