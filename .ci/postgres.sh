#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: Debian's, run as the `postgres`
# user (runuser) in a private temporary directory, on a unix socket there and on
# 127.0.0.1:$CAIRNFLOW_PG_PORT (a free port when unset). It exports
# CAIRNFLOW_TEST_PG_URL (postgresql+psycopg://..., through the socket) and stops
# the server and removes the directory when the shell that started it exits.
#
#   source .ci/postgres.sh          # in .ci/run: start now, stop on exit
#   .ci/postgres.sh CMD ARGS...      # run one command against a fresh server
#
# Must run as root (runuser). Installs Debian's server with apt-get if missing.
set -euo pipefail

_cf_pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$bin" ]; then
    apt-get install -y postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$bin"
}

cf_pg_start() {
  local bin dir port password
  bin=$(_cf_pg_bin)
  port=${CAIRNFLOW_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  dir=$(mktemp -d /tmp/cairnflow-pg.XXXXXX)
  password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  chown postgres: "$dir"
  chmod 700 "$dir"
  printf '%s\n' "$password" >"$dir/pwfile"
  chown postgres: "$dir/pwfile"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U cairnflow --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  chmod 711 "$dir"  # others may reach the socket (a password is still needed), not the files
  PGPASSWORD=$password "$bin/createdb" -h "$dir" -p "$port" -U cairnflow cairnflow_test
  export CAIRNFLOW_PG_DIR=$dir CAIRNFLOW_PG_BIN=$bin CAIRNFLOW_PG_PORT=$port
  export CAIRNFLOW_TEST_PG_URL="postgresql+psycopg://cairnflow:$password@/cairnflow_test?host=$dir&port=$port"
  echo "postgres: listening on $dir and 127.0.0.1:$port" >&2
}

cf_pg_stop() {
  if [ -n "${CAIRNFLOW_PG_DIR:-}" ] && [ -d "$CAIRNFLOW_PG_DIR/data" ]; then
    runuser -u postgres -- "$CAIRNFLOW_PG_BIN/pg_ctl" -D "$CAIRNFLOW_PG_DIR/data" -m fast \
      -w stop >/dev/null 2>&1 || true
    rm -rf "$CAIRNFLOW_PG_DIR"
  fi
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: start now; stop on exit, after whatever EXIT trap was already set.
  cf_pg_start
  _cf_pg_previous_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
  trap "cf_pg_stop; ${_cf_pg_previous_trap:-:}" EXIT
else
  trap cf_pg_stop EXIT
  cf_pg_start
  "$@"
fi
