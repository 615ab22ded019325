#!/usr/bin/env bash
# scripts/services.sh: make sure PostgreSQL and Redis answer at the addresses in DATABASE_URL and
# REDIS_URL, starting the local ones if they are installed but stopped, then create the database named
# in DATABASE_URL when it does not exist yet. Safe to run repeatedly; it never drops or wipes data.
#
#   bash scripts/services.sh            (or source it and call ensure_services)

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICE_WAIT_SECONDS=30

# wait_until SECONDS CMD...: poll CMD once a second until it succeeds or SECONDS pass.
wait_until() {
  local secs="$1" i
  shift
  for ((i = 0; i < secs; i++)); do
    "$@" && return 0
    sleep 1
  done
  "$@"
}

# --- PostgreSQL ---------------------------------------------------------------------------------

postgres_ready() {
  # pg_isready only asks "is the server accepting connections", which is exactly the question (it
  # succeeds even if the database does not exist yet). Without it, a TCP connect is the best we have.
  if have pg_isready; then
    # -d takes the whole URL, so user, ?host=, sslmode... are honoured exactly as the app will use them.
    pg_isready -q -t 3 -d "$DATABASE_URL" >/dev/null 2>&1
  else
    tcp_listening "$PG_HOST" "$PG_PORT"
  fi
}

# start_local_postgres: start the Debian cluster that is configured for $PG_PORT. Debian's
# pg_ctlcluster manages /etc/postgresql/<version>/<cluster>; --skip-systemctl-redirect makes it work
# in containers without systemd.
start_local_postgres() {
  local conf version cluster port line chosen="" count=0
  have pg_ctlcluster || return 1
  for conf in /etc/postgresql/*/*/postgresql.conf; do
    [[ -f "$conf" ]] || continue
    version="$(basename "$(dirname "$(dirname "$conf")")")"
    cluster="$(basename "$(dirname "$conf")")"
    # Read `port = NNNN` from the config with bash only (default 5432).
    port=5432
    while IFS= read -r line; do
      if [[ "$line" =~ ^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+) ]]; then
        port="${BASH_REMATCH[1]}"
      fi
    done <"$conf"
    count=$((count + 1))
    if [[ "$port" == "$PG_PORT" ]]; then
      chosen="$version $cluster"
      break
    fi
  done
  [[ -n "$chosen" ]] || return 1
  log "PostgreSQL is not running on $PG_HOST:$PG_PORT; starting cluster $chosen (pg_ctlcluster)..."
  # shellcheck disable=SC2086 # "$chosen" is "<version> <cluster>", two words on purpose
  pg_ctlcluster --skip-systemctl-redirect $chosen start >&2 || {
    warn "pg_ctlcluster $chosen start failed (if you are not root, start PostgreSQL as its owner or with sudo)"
    return 1
  }
}

ensure_postgres() {
  parse_url "$DATABASE_URL" 5432
  PG_HOST="$URL_HOST" PG_PORT="$URL_PORT" PG_DB="$URL_PATH"
  [[ -n "$PG_DB" ]] || die "DATABASE_URL=$DATABASE_URL names no database (expected postgres://user@host:port/dbname)"
  postgres_ready && return 0

  if is_local_host "$PG_HOST" && start_local_postgres; then
    wait_until "$SERVICE_WAIT_SECONDS" postgres_ready && {
      log "PostgreSQL is up on $PG_HOST:$PG_PORT"
      return 0
    }
    die "PostgreSQL was started but did not accept connections on $PG_HOST:$PG_PORT within ${SERVICE_WAIT_SECONDS}s (see /var/log/postgresql/)"
  fi

  if is_local_host "$PG_HOST" && ! have pg_ctlcluster && ! have postgres; then
    die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT and does not seem to be installed. Install it (Debian/Ubuntu: apt-get install postgresql) and start it, or point DATABASE_URL at a running server."
  fi
  die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT (DATABASE_URL=$DATABASE_URL). Start it (Debian/Ubuntu: package postgresql, 'pg_ctlcluster <version> main start'), or point DATABASE_URL at a running server."
}

# url_with_database URL DB: the same connection URL with another database name, keeping user,
# password, host, port and ?options. Used to reach the always-present `postgres` maintenance database.
url_with_database() {
  local url="$1" db="$2" scheme rest authority query=""
  scheme="${url%%://*}"
  rest="${url#*://}"
  authority="${rest%%[/?]*}"
  rest="${rest#"$authority"}"
  [[ "$rest" == *\?* ]] && query="?${rest#*\?}"
  printf '%s://%s/%s%s\n' "$scheme" "$authority" "$db" "$query"
}

ensure_database() {
  local admin_url exists
  if ! have psql; then
    # Not fatal: the database may well exist already; `migrate` reports it clearly if it does not.
    warn "psql is not installed, so database '$PG_DB' cannot be checked or created here (Debian/Ubuntu: apt-get install postgresql-client)"
    return 0
  fi
  admin_url="$(url_with_database "$DATABASE_URL" postgres)"
  # The name goes through a psql variable (:'db' / :"db"), so quoting is done by psql, not by string
  # pasting: any database name is safe. (psql does not interpolate variables in -c, hence stdin.)
  exists="$(psql "$admin_url" -X -q -At -v ON_ERROR_STOP=1 -v db="$PG_DB" 2>&1 <<'SQL'
SELECT 1 FROM pg_database WHERE datname = :'db';
SQL
)" || die "cannot connect to PostgreSQL as $admin_url: $exists"
  [[ "$exists" == 1 ]] && return 0

  log "creating database \"$PG_DB\""
  if ! psql "$admin_url" -X -q -v ON_ERROR_STOP=1 -v db="$PG_DB" >/dev/null <<'SQL'
CREATE DATABASE :"db";
SQL
  then
    # Another process may have created it concurrently; only fail if it still does not exist.
    exists="$(psql "$admin_url" -X -q -At -v db="$PG_DB" <<'SQL' 2>/dev/null || true
SELECT 1 FROM pg_database WHERE datname = :'db';
SQL
)"
    [[ "$exists" == 1 ]] || die "could not create database \"$PG_DB\" (see the error above; the user in DATABASE_URL needs the CREATEDB privilege)"
  fi
}

# --- Redis ----------------------------------------------------------------------------------------

redis_ready() {
  local reply
  if have redis-cli; then
    # -u understands redis://[user:pass@]host:port/db; --tls is needed for rediss:// URLs.
    local tls=()
    [[ "$REDIS_URL" == rediss://* ]] && tls=(--tls)
    # ${tls[@]+...} keeps bash < 4.4 happy with an empty array under set -u. redis-cli's exit code for
    # error replies differs between versions, so judge by the reply text.
    reply="$(with_timeout 5 redis-cli ${tls[@]+"${tls[@]}"} -u "$REDIS_URL" --no-auth-warning ping 2>&1)" || true
    # NOAUTH still proves a Redis server is listening; the app authenticates with its own URL.
    [[ "$reply" == PONG || "$reply" == *NOAUTH* ]]
  else
    tcp_listening "$REDIS_HOST" "$REDIS_PORT"
  fi
}

# start_local_redis: start a non-persistent local redis-server (the app treats Redis as a cache of
# state that lives in PostgreSQL/Temporal). Uses the Debian paths when writable, else the data dir.
start_local_redis() {
  local dir=/var/lib/redis logfile=/var/log/redis/ci.log
  have redis-server || return 1
  if [[ ! -d "$dir" || ! -w "$dir" ]]; then
    dir="$COSTGUARD_DATA_DIR/redis"
    mkdir -p "$dir"
  fi
  if [[ ! -d "$(dirname "$logfile")" || ! -w "$(dirname "$logfile")" ]]; then
    logfile="$COSTGUARD_DATA_DIR/redis.log"
    mkdir -p "$COSTGUARD_DATA_DIR"
  fi
  log "Redis is not running on $REDIS_HOST:$REDIS_PORT; starting redis-server (log: $logfile)..."
  # --save "" / --appendonly no: never write snapshots; "-::1" binds IPv6 loopback only if available.
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$dir" --logfile "$logfile" >&2 || {
    warn "redis-server failed to start (see $logfile)"
    return 1
  }
}

ensure_redis() {
  parse_url "$REDIS_URL" 6379
  REDIS_HOST="$URL_HOST" REDIS_PORT="$URL_PORT"
  redis_ready && return 0

  if is_local_host "$REDIS_HOST" && start_local_redis; then
    wait_until "$SERVICE_WAIT_SECONDS" redis_ready && {
      log "Redis is up on $REDIS_HOST:$REDIS_PORT"
      return 0
    }
    die "redis-server was started but did not answer on $REDIS_HOST:$REDIS_PORT within ${SERVICE_WAIT_SECONDS}s"
  fi

  if is_local_host "$REDIS_HOST" && ! have redis-server; then
    die "Redis is not reachable at $REDIS_HOST:$REDIS_PORT and redis-server is not installed. Install it (Debian/Ubuntu: apt-get install redis-server) or point REDIS_URL at a running server."
  fi
  die "Redis is not reachable at $REDIS_HOST:$REDIS_PORT (REDIS_URL=$REDIS_URL). Start it (Debian/Ubuntu: package redis-server) or point REDIS_URL at a running server."
}

ensure_services() {
  ensure_postgres
  ensure_database
  ensure_redis
  log "services ready: PostgreSQL $PG_HOST:$PG_PORT/$PG_DB, Redis $REDIS_HOST:$REDIS_PORT"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  ensure_services
fi
