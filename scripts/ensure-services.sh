#!/usr/bin/env sh
# Starts the local PostgreSQL and Redis the test suite needs, when they are not already answering.
set -eu

# The tests' Redis is TEST_REDIS (host:port), so that two suites on one machine each start and use their own.
redis_address="${TEST_REDIS:-127.0.0.1:6379}"
redis_host="${redis_address%:*}"
redis_port="${redis_address##*:}"

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || { echo "error: PostgreSQL did not start" >&2; exit 1; }
fi
if ! redis_up; then
    echo "Redis is not answering on $redis_address; starting it"
    redis-server --daemonize yes --bind "$redis_host" --port "$redis_port" --save "" --appendonly no
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
    redis_up || { echo "error: Redis did not start" >&2; exit 1; }
fi
echo "PostgreSQL and Redis are up"
