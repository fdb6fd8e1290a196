#!/usr/bin/env bash
# Starts a throwaway Postgres cluster for the tests and prints, on standard
# output, the lines to eval:
#   eval "$(bash .ci/postgres.sh)"        # sets TRAINWATCH_TEST_PG_URL (and _DIR)
#   bash .ci/postgres.sh stop "$TRAINWATCH_TEST_PG_DIR"
# Installs Debian's `postgresql` package when no server binaries are found
# and this runs as root. Debian's server refuses to run as root, so as root
# the cluster is created and run as the `postgres` user. It listens on
# 127.0.0.1 only, on the first free port from 55432, with trust auth (a
# throwaway for tests: never use it for data). Progress goes to stderr.
set -euo pipefail

say() { echo "postgres.sh: $*" >&2; }

if [ "${1:-}" = "stop" ]; then
  dir="${2:?usage: postgres.sh stop DIR}"
  bin="$(cat "$dir/bindir")"
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >&2 || true
  else
    "$bin/pg_ctl" -D "$dir/data" -m immediate stop >&2 || true
  fi
  rm -rf "$dir"
  exit 0
fi

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
bin="$(find_bin || true)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing postgresql (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bin="$(find_bin)"
  else
    say "no Postgres server found (looked in /usr/lib/postgresql/*/bin): install Debian's postgresql package, or set TRAINWATCH_TEST_PG_URL to a server of yours"
    exit 1
  fi
fi

# The first port from $1 that nothing answers on.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
  done
  echo "$port"
}
port=$(free_port 55432)

dir="$(mktemp -d "${TMPDIR:-/tmp}/trainwatch-pg.XXXXXX")"
echo "$bin" >"$dir/bindir"
as_owner=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" postgres
  chown postgres "$dir"
  chmod 755 "$dir"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
# fsync off: a throwaway cluster for tests, where speed matters and a power cut does not.
# A port free when probed can still be refused at bind (another process
# took it, or a server just stopped there): then the next free one, a few times.
started=""
for attempt in 1 2 3 4 5; do
  if "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >&2; then
    started=yes
    break
  fi
  say "could not start on port $port (attempt $attempt); trying the next free port"
  port=$(free_port $((port + 1)))
done
[ -n "$started" ] || { cat "$dir/server.log" >&2; exit 1; }
say "started Postgres ($bin) on 127.0.0.1:$port, data in $dir"
echo "export TRAINWATCH_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/postgres"
echo "export TRAINWATCH_TEST_PG_DIR=$dir"
