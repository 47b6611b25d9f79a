#!/usr/bin/env sh
# Debian packages the test suite uses beyond Python: Chromium for the status page's browser test (driven by
# Playwright's Python package with executable_path=/usr/bin/chromium; `playwright install` downloads nothing
# here) and docker-compose to validate the compose file. Installed only when missing and only as root.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: cannot install$missing (needs root and apt-get); the tests that need them will say so" >&2
    exit 0
fi
echo "Installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends $missing >/dev/null
}
