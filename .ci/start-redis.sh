#!/usr/bin/env bash
# Start a throwaway Redis for the distribution tests, or reuse the one already running.
#
#   eval "$(bash .ci/start-redis.sh)"    # starts it, exports BOLLYDOG_TEST_REDIS_URL
#   bash .ci/start-redis.sh stop         # stops it
#
# Listens on 127.0.0.1 only, port $BOLLYDOG_REDIS_PORT (56379), no persistence (--save '',
# --appendonly no): this server is for tests, never for data you want to keep.
# Idempotent: running it again while the server is up only re-checks it answers PING.
# stdout carries only the `export ...` line; progress goes to stderr. Exits non-zero if the
# server does not come up. Installs the Debian 'redis-server' package when it is missing.
set -euo pipefail

PORT="${BOLLYDOG_REDIS_PORT:-56379}"
PIDFILE="${BOLLYDOG_REDIS_PIDFILE:-/tmp/bollydog-redis-${PORT}.pid}"
LOG="${BOLLYDOG_REDIS_LOG:-/tmp/bollydog-redis-${PORT}.log}"
URL="redis://127.0.0.1:${PORT}/0"

say() { echo "start-redis: $*" >&2; }

ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

if [ "${1:-}" = "stop" ]; then
    if command -v redis-cli >/dev/null && ping; then
        redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
        say "stopped the server on port $PORT"
    else
        say "not running on port $PORT"
    fi
    exit 0
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        say "redis-server not found and not root: install the 'redis-server' package"
        exit 1
    fi
    say "redis-server not found; installing the 'redis-server' package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq redis-server >&2
fi

if ping; then
    say "already running on 127.0.0.1:$PORT"
else
    say "starting on 127.0.0.1:$PORT (log: $LOG)"
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$PIDFILE" --logfile "$LOG" >&2
    for _ in $(seq 1 50); do
        if ping; then break; fi
        sleep 0.1
    done
    if ! ping; then
        say "the server did not come up; last lines of $LOG:"
        tail -n 20 "$LOG" >&2 || true
        exit 1
    fi
fi

say "ready: $URL"
echo "export BOLLYDOG_TEST_REDIS_URL=$URL"
