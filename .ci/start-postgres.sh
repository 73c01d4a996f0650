#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the persistence tests, or reuse the one already running.
#
#   eval "$(bash .ci/start-postgres.sh)"    # starts it, exports BOLLYDOG_TEST_POSTGRES_URL
#   bash .ci/start-postgres.sh stop         # stops it (the data folder is kept)
#
# Listens on 127.0.0.1 only, port $BOLLYDOG_PG_PORT (55432); data in $BOLLYDOG_PG_DATA
# (/tmp/bollydog-pg). Role and database "bollydog", password "bollydog". Durability is turned
# off (fsync=off): this server is for tests, never for data you want to keep.
# Idempotent: running it again while the server is up only re-checks the role and database.
# stdout carries only the `export ...` line; progress goes to stderr. Exits non-zero if the
# server does not come up.
set -euo pipefail

PORT="${BOLLYDOG_PG_PORT:-55432}"
DATA="${BOLLYDOG_PG_DATA:-/tmp/bollydog-pg}"
SOCKETS="${DATA}-sockets"
LOG="${DATA}.log"
OS_USER="${BOLLYDOG_PG_OS_USER:-bollydogpg}"   # initdb refuses to run as root
URL="postgresql+asyncpg://bollydog:bollydog@127.0.0.1:${PORT}/bollydog"

say() { echo "start-postgres: $*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"; return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0
    fi
    return 1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
    if [ "$(id -u)" != 0 ]; then
        say "no PostgreSQL server binaries found and not root: install the 'postgresql' package"
        exit 1
    fi
    say "no PostgreSQL server binaries found; installing the 'postgresql' package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir || true)"
    if [ -z "$BINDIR" ]; then
        say "postgresql installed but initdb/pg_ctl/postgres not found"
        exit 1
    fi
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$OS_USER" -- "$@"
    else
        "$@"
    fi
}

psql_admin() {
    as_owner "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKETS" -p "$PORT" -U postgres -d postgres "$@"
}

if [ "${1:-}" = "stop" ]; then
    if [ -f "$DATA/postmaster.pid" ]; then
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >&2
    else
        say "not running (no $DATA/postmaster.pid)"
    fi
    exit 0
fi

if [ "$(id -u)" = 0 ] && ! id "$OS_USER" >/dev/null 2>&1; then
    say "creating OS user $OS_USER to own the server"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$OS_USER"
fi
mkdir -p "$DATA" "$SOCKETS"
if [ "$(id -u)" = 0 ]; then
    chown "$OS_USER" "$DATA" "$SOCKETS"
    touch "$LOG" && chown "$OS_USER" "$LOG"
fi
chmod 700 "$DATA"

if [ ! -f "$DATA/PG_VERSION" ]; then
    say "initialising $DATA with $BINDIR/initdb"
    as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --no-instructions >&2
fi

if as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "already running on port $PORT"
else
    say "starting on 127.0.0.1:$PORT (log: $LOG)"
    if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKETS -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2; then
        say "the server did not come up; last lines of $LOG:"
        tail -n 20 "$LOG" >&2 || true
        exit 1
    fi
fi

for _ in $(seq 1 50); do
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then break; fi
    sleep 0.2
done
if ! "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    say "the server is not accepting connections on 127.0.0.1:$PORT"
    exit 1
fi

if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'bollydog'")" ]; then
    psql_admin -c "CREATE ROLE bollydog LOGIN PASSWORD 'bollydog'"
fi
if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'bollydog'")" ]; then
    psql_admin -c "CREATE DATABASE bollydog OWNER bollydog"
fi

say "ready: $URL"
echo "export BOLLYDOG_TEST_POSTGRES_URL=$URL"
