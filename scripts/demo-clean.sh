#!/usr/bin/env sh
# `make demo-clean`: removes the demo's data folder (its database, hour files, archive, keys and logs), and nothing
# else. Refuses a folder that `make demo` did not mark as its own, and a demo whose supervisord still answers.
set -eu
demo_dir="$1"
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ ! -e "$demo_dir" ]; then
    echo "No demo data at $demo_dir."
    exit 0
fi
if [ ! -f "$demo_dir/.iseif-demo" ]; then
    echo "error: $demo_dir is not a folder \`make demo\` created (no .iseif-demo marker); not removing it" >&2
    exit 1
fi
if [ -f "$demo_dir/service.env" ]; then
    # `supervisorctl pid` succeeds only when a supervisord answers on the demo's socket.
    if "$here/iseif" -e "$demo_dir/service.env" supervisorctl pid >/dev/null 2>&1; then
        echo "error: the demo is running; stop it (Ctrl-C in its terminal) before \`make demo-clean\`" >&2
        exit 1
    fi
fi
rm -rf -- "$demo_dir"
echo "Removed the demo data in $demo_dir."
