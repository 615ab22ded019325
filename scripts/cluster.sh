#!/usr/bin/env bash
# scripts/cluster.sh: Cost Guard on a production-shaped Temporal cluster, on this machine.
#
#   npm run start:cluster                 (= bash scripts/cluster.sh up)
#     1. temporal-server + temporal-sql-tool v1.29.1, built once into the cache (scripts/temporal-server.sh)
#     2. certificates on first run (a CA, the frontend's server certificate, a client certificate)
#     3. PostgreSQL persistence and visibility, each in its own database, created and their schemas set
#        up and upgraded by temporal-sql-tool
#     4. temporal-server (frontend, history, matching, worker services; 16 history shards), the
#        frontend on mTLS only; the namespace and Cost Guard's search attributes registered
#     5. migrations, then COSTGUARD_CLUSTER_WORKERS workers and COSTGUARD_CLUSTER_APIS API processes
#        (2 and 2; APIs on 18080, 18081, ...), all over mTLS, until Ctrl-C: then the app processes stop
#        first, then the Temporal server if this command started it
#   bash scripts/cluster.sh server        steps 1-4 only; the server keeps running in the background
#   bash scripts/cluster.sh env           prints `export ...` lines to reach it (eval "$(... env)")
#   bash scripts/cluster.sh down          stops a server started by `server`
#
# Environment (besides DATABASE_URL, REDIS_URL, ... of scripts/lib.sh; the app database defaults to
# costguard_cluster and the Redis prefix to costguard-cluster:, so it never mixes with `npm start`'s):
#   COSTGUARD_CLUSTER_DIR       certificates, server config, logs, pid (default $COSTGUARD_CACHE_DIR/cluster:
#                               one cluster per machine, whichever checkout started it)
#   COSTGUARD_CLUSTER_PORT      the frontend's gRPC port (default 17233; the other services use the
#                               ports after it: history +1, matching +2, worker +6, membership -300,
#                               HTTP +10, Prometheus +2000)
#   COSTGUARD_CLUSTER_DB        persistence database (default temporal_cluster; visibility: <it>_visibility)
#   COSTGUARD_CLUSTER_WORKERS   worker processes (default 2)
#   COSTGUARD_CLUSTER_APIS      API processes (default 2)
#   COSTGUARD_CLUSTER_API_PORT  the first API's port (default 18080; the next ones count up)
#   TEMPORAL_SERVER_BUILD=0     fail instead of building a missing temporal-server

# `up` dies with its parent: npm killed alone does not pass the signal on, and the workers and APIs
# must not outlive it (the same parent-death signal as scripts/run.sh; HUP runs the cleanup below).
if [[ "${1:-up}" == up && -z "${COSTGUARD_CLUSTER_PDEATHSIG:-}" ]] && command -v setpriv >/dev/null 2>&1 &&
  setpriv --pdeathsig HUP -- true >/dev/null 2>&1; then
  export COSTGUARD_CLUSTER_PDEATHSIG=1
  exec setpriv --pdeathsig HUP -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
unset COSTGUARD_CLUSTER_PDEATHSIG

if [[ -z "${DATABASE_URL:-}" ]]; then export DATABASE_URL=postgres://postgres@127.0.0.1:5432/costguard_cluster; fi
if [[ -z "${REDIS_KEY_PREFIX:-}" ]]; then export REDIS_KEY_PREFIX=costguard-cluster:; fi

# shellcheck source=scripts/temporal-server.sh
. "$(dirname "${BASH_SOURCE[0]}")/temporal-server.sh"

: "${COSTGUARD_CLUSTER_DIR:=$COSTGUARD_CACHE_DIR/cluster}"
: "${COSTGUARD_CLUSTER_PORT:=17233}"
: "${COSTGUARD_CLUSTER_DB:=temporal_cluster}"
: "${COSTGUARD_CLUSTER_WORKERS:=2}"
: "${COSTGUARD_CLUSTER_APIS:=2}"
: "${COSTGUARD_CLUSTER_API_PORT:=18080}"
: "${TEMPORAL_NAMESPACE:=default}"
for v in COSTGUARD_CLUSTER_PORT COSTGUARD_CLUSTER_WORKERS COSTGUARD_CLUSTER_APIS COSTGUARD_CLUSTER_API_PORT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v=${!v} is not a number"
done
[[ "$COSTGUARD_CLUSTER_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "COSTGUARD_CLUSTER_DB=$COSTGUARD_CLUSTER_DB: expected a lower-case SQL name (letters, digits, _)"
mkdir -p "$COSTGUARD_CLUSTER_DIR"
COSTGUARD_CLUSTER_DIR="$(cd "$COSTGUARD_CLUSTER_DIR" && pwd -P)"
CERTS="$COSTGUARD_CLUSTER_DIR/certs"
FRONTEND_PORT="$COSTGUARD_CLUSTER_PORT"
CLUSTER_ADDRESS="127.0.0.1:$FRONTEND_PORT"
SERVER_PID_FILE="$COSTGUARD_CLUSTER_DIR/temporal-server.pid"
SERVER_LOG="$COSTGUARD_CLUSTER_DIR/temporal-server.log"

# The variables every Cost Guard process and the Temporal CLI read to reach the cluster over mTLS.
cluster_env() {
  cat <<EOF
export TEMPORAL_ADDRESS=$CLUSTER_ADDRESS
export TEMPORAL_NAMESPACE=$TEMPORAL_NAMESPACE
export TEMPORAL_TLS_SERVER_CA_CERT_PATH=$CERTS/ca.pem
export TEMPORAL_TLS_CLIENT_CERT_PATH=$CERTS/client.pem
export TEMPORAL_TLS_CLIENT_KEY_PATH=$CERTS/client-key.pem
export TEMPORAL_TLS_SERVER_NAME=localhost
EOF
}

# ensure_certs: a CA and two certificates it signs, made once (10 years): the frontend's (localhost,
# 127.0.0.1, temporal: the compose service name) and one client certificate the app and the CLI share.
ensure_certs() {
  [[ -s "$CERTS/ca.pem" && -s "$CERTS/server.pem" && -s "$CERTS/client.pem" ]] && return 0
  have openssl || die "openssl is needed to generate the cluster's certificates (Debian/Ubuntu: apt-get install openssl)"
  log "generating the cluster's certificates in $CERTS (first run)"
  rm -rf "$CERTS"
  mkdir -p "$CERTS"
  (
    umask 077
    cd "$CERTS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=Cost Guard local cluster CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    issue() { # issue NAME CN EXTENSIONS
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    issue server localhost "$(printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth,clientAuth' 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:temporal')"
    issue client costguard "$(printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=clientAuth')"
    chmod 644 ca.pem server.pem client.pem
  ) || die "openssl failed to generate the certificates in $CERTS"
}

# pg_parts: host, port, user and password of DATABASE_URL (the server's databases live beside the app's).
pg_parts() {
  local rest authority userinfo=""
  parse_url "$DATABASE_URL" 5432
  PG_HOST="$URL_HOST" PG_PORT="$URL_PORT"
  rest="${DATABASE_URL#*://}"
  authority="${rest%%[/?]*}"
  [[ "$authority" == *@* ]] && userinfo="${authority%@*}"
  PG_USER="$(url_decode "${userinfo%%:*}")"
  PG_PASSWORD=""
  [[ "$userinfo" == *:* ]] && PG_PASSWORD="$(url_decode "${userinfo#*:}")"
  [[ -n "$PG_USER" ]] || PG_USER=postgres
}

# ensure_schemas: both databases created (idempotent), versioning tables set up, then upgraded to the
# schema embedded in this temporal-sql-tool (a no-op when already there).
ensure_schemas() {
  local tool="$1" db schema
  for db in "$COSTGUARD_CLUSTER_DB" "${COSTGUARD_CLUSTER_DB}_visibility"; do
    schema=postgresql/v12/temporal
    [[ "$db" == *_visibility ]] && schema=postgresql/v12/visibility
    local args=(--plugin postgres12 --endpoint "$PG_HOST" --port "$PG_PORT" --user "$PG_USER" --database "$db" --quiet)
    [[ -n "$PG_PASSWORD" ]] && args+=(--password "$PG_PASSWORD")
    "$tool" "${args[@]}" create-database >>"$COSTGUARD_CLUSTER_DIR/schema.log" 2>&1 || die "temporal-sql-tool could not create database $db on $PG_HOST:$PG_PORT (see $COSTGUARD_CLUSTER_DIR/schema.log)"
    "$tool" "${args[@]}" setup-schema -v 0.0 >>"$COSTGUARD_CLUSTER_DIR/schema.log" 2>&1 || die "temporal-sql-tool setup-schema failed on $db (see $COSTGUARD_CLUSTER_DIR/schema.log)"
    "$tool" "${args[@]}" update-schema --schema-name "$schema" >>"$COSTGUARD_CLUSTER_DIR/schema.log" 2>&1 || die "temporal-sql-tool update-schema failed on $db (see $COSTGUARD_CLUSTER_DIR/schema.log)"
  done
}

# write_server_config: the server's static config (16 shards, PostgreSQL, mTLS frontend) and its
# dynamic config, regenerated each start from the settings above.
write_server_config() {
  local dir="$COSTGUARD_CLUSTER_DIR/config" p="$FRONTEND_PORT"
  mkdir -p "$dir"
  local sql_common
  sql_common="pluginName: postgres12
        connectAddr: \"$PG_HOST:$PG_PORT\"
        connectProtocol: tcp
        user: \"$PG_USER\"
        password: \"$PG_PASSWORD\"
        maxConnLifetime: 1h"
  cat >"$dir/cluster.yaml" <<EOF
# Generated by scripts/cluster.sh; edits are overwritten on the next start.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 16
  datastores:
    postgres-default:
      sql:
        $sql_common
        databaseName: $COSTGUARD_CLUSTER_DB
        maxConns: 20
        maxIdleConns: 20
    postgres-visibility:
      sql:
        $sql_common
        databaseName: ${COSTGUARD_CLUSTER_DB}_visibility
        maxConns: 10
        maxIdleConns: 10
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      listenAddress: 127.0.0.1:$((p + 2000))
  tls:
    frontend:
      server:
        certFile: $CERTS/server.pem
        keyFile: $CERTS/server-key.pem
        requireClientAuth: true
        clientCaFiles: [$CERTS/ca.pem]
      client:
        serverName: localhost
        rootCaFiles: [$CERTS/ca.pem]
    systemWorker:
      certFile: $CERTS/client.pem
      keyFile: $CERTS/client-key.pem
      client:
        serverName: localhost
        rootCaFiles: [$CERTS/ca.pem]
services:
  frontend:
    rpc: { grpcPort: $p, membershipPort: $((p - 300)), bindOnIP: 127.0.0.1, httpPort: $((p + 10)) }
  history:
    rpc: { grpcPort: $((p + 1)), membershipPort: $((p - 299)), bindOnIP: 127.0.0.1 }
  matching:
    rpc: { grpcPort: $((p + 2)), membershipPort: $((p - 298)), bindOnIP: 127.0.0.1 }
  worker:
    rpc: { grpcPort: $((p + 6)), membershipPort: $((p - 294)), bindOnIP: 127.0.0.1 }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: localhost:$p
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: $dir/dynamic.yaml
  pollInterval: 10s
EOF
  cat >"$dir/dynamic.yaml" <<'EOF'
# Generated by scripts/cluster.sh. Search attributes added at start-up are visible at once (as on the dev server).
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
limit.maxIDLength:
  - value: 255
EOF
}

cli_with_tls() {
  (eval "$(cluster_env)" && with_timeout 30 "$TEMPORAL_CLI_PATH" "$@")
}

server_healthy() { cli_with_tls operator cluster health >/dev/null 2>&1; }

# ensure_namespace: the namespace (3 days' retention) and Cost Guard's search attributes; both
# idempotent (a second run finds them).
ensure_namespace() {
  local name type i
  if ! cli_with_tls operator namespace describe -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    log "registering namespace $TEMPORAL_NAMESPACE"
    cli_with_tls operator namespace create -n "$TEMPORAL_NAMESPACE" --retention 72h >&2 || die "could not create namespace $TEMPORAL_NAMESPACE"
    # A new namespace reaches every frontend's cache within seconds.
    for ((i = 0; i < 30; i++)); do
      cli_with_tls operator namespace describe -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  local existing
  existing="$(cli_with_tls operator search-attribute list -n "$TEMPORAL_NAMESPACE" 2>/dev/null || true)"
  while read -r name type; do
    [[ -z "$name" || "$existing" == *"$name"* ]] && continue
    cli_with_tls operator search-attribute create -n "$TEMPORAL_NAMESPACE" --name "$name" --type "$type" >&2 || die "could not register search attribute $name"
  done < <(node --input-type=module -e "
    const { searchAttributes } = await import('$COSTGUARD_ROOT/dist/src/messages.js');
    for (const k of Object.values(searchAttributes)) console.log(k.name, k.type);
  ")
}

start_server() {
  local dir pid i
  dir="$(temporal_server_dir)"
  if [[ -f "$SERVER_PID_FILE" ]] && kill -0 "$(cat "$SERVER_PID_FILE")" 2>/dev/null && server_healthy; then
    log "the Temporal cluster is already running (pid $(cat "$SERVER_PID_FILE"), $CLUSTER_ADDRESS)"
    SERVER_STARTED=""
    return 0
  fi
  if tcp_listening 127.0.0.1 "$FRONTEND_PORT"; then
    die "port $FRONTEND_PORT is taken by another process: set COSTGUARD_CLUSTER_PORT to a free port"
  fi
  ensure_certs
  pg_parts
  ensure_schemas "$dir/temporal-sql-tool"
  write_server_config
  log "starting temporal-server (16 history shards, PostgreSQL $PG_HOST:$PG_PORT/$COSTGUARD_CLUSTER_DB, mTLS frontend $CLUSTER_ADDRESS; log: $SERVER_LOG)"
  # setsid: its own session, so the terminal's Ctrl-C reaches it only through our cleanup.
  setsid "$dir/temporal-server" --root "$COSTGUARD_CLUSTER_DIR" --config config --env cluster --allow-no-auth start </dev/null >>"$SERVER_LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$SERVER_PID_FILE"
  SERVER_STARTED="$pid"
  for ((i = 0; i < 120; i++)); do
    server_healthy && break
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$SERVER_LOG" >&2 || true
      die "temporal-server exited during startup (see $SERVER_LOG)"
    fi
    sleep 1
  done
  server_healthy || die "temporal-server is not healthy after 120 s (see $SERVER_LOG)"
  log "the Temporal cluster is up at $CLUSTER_ADDRESS (mTLS)"
}

stop_server() {
  local pid i
  [[ -f "$SERVER_PID_FILE" ]] || return 0
  pid="$(cat "$SERVER_PID_FILE")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping temporal-server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$SERVER_PID_FILE"
}

bring_up_server() {
  costguard_prepare
  [[ -f dist/src/messages.js ]] || costguard_build
  start_server
  ensure_namespace
}

# The app processes: name -> pid, and how to start each (its port settings).
declare -A APP_PID=() APP_ENV=() APP_ARGS=() APP_STARTED=()
APP_NAMES=()
PROCESSES_FILE="$COSTGUARD_CLUSTER_DIR/processes" # name pid [url], for bench/cluster-check.ts

write_processes() {
  local name url
  : >"$PROCESSES_FILE"
  for name in "${APP_NAMES[@]}"; do
    url=""
    [[ "$name" == api-* ]] && url=" http://127.0.0.1:${APP_ENV[$name]#API_PORT=}"
    echo "$name ${APP_PID[$name]}$url" >>"$PROCESSES_FILE"
  done
}

# start_app NAME ENV ARGS: one `costguard start` process, logging JSON to logs/NAME.log.
start_app() {
  local name="$1"
  APP_ENV[$name]="$2" APP_ARGS[$name]="$3"
  # shellcheck disable=SC2086
  env ${APP_ENV[$name]} LOG_FORMAT=json node dist/src/cli/main.js start ${APP_ARGS[$name]} >>"$COSTGUARD_CLUSTER_DIR/logs/$name.log" 2>&1 &
  APP_PID[$name]=$!
  APP_STARTED[$name]=$SECONDS
  write_processes
}

stop_all() {
  local name i alive
  trap - INT TERM HUP
  for name in "${APP_NAMES[@]}"; do kill -TERM "${APP_PID[$name]}" 2>/dev/null || true; done
  for ((i = 0; i < 30; i++)); do
    alive=0
    for name in "${APP_NAMES[@]}"; do kill -0 "${APP_PID[$name]}" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 1
  done
  for name in "${APP_NAMES[@]}"; do kill -KILL "${APP_PID[$name]}" 2>/dev/null || true; done
  [[ -n "${SERVER_STARTED:-}" ]] && stop_server
  exit "${1:-0}"
}

up() {
  local i j port name
  costguard_setup
  start_server
  trap stop_all INT TERM HUP
  ensure_namespace
  eval "$(cluster_env)"
  # No Web UI is built here: see README "Deployment" for pointing one at the cluster.
  export TEMPORAL_UI_URL="${TEMPORAL_UI_URL:-http://127.0.0.1:8233}"
  # A request log line per call costs CPU that two cores need for the load: warnings and errors only.
  export LOG_LEVEL="${LOG_LEVEL:-warn}"
  log "running database migrations (costguard migrate)..."
  node dist/src/cli/main.js migrate >&2 || die "migrations failed; DATABASE_URL=$DATABASE_URL"
  mkdir -p "$COSTGUARD_CLUSTER_DIR/logs"
  for ((i = 1; i <= COSTGUARD_CLUSTER_WORKERS; i++)); do
    name="worker-$i"
    APP_NAMES+=("$name")
    start_app "$name" "METRICS_PORT=$((19463 + i))" "--no-api"
    log "$name: pid ${APP_PID[$name]}, metrics http://127.0.0.1:$((19463 + i))/metrics, log $COSTGUARD_CLUSTER_DIR/logs/$name.log"
  done
  for ((i = 1; i <= COSTGUARD_CLUSTER_APIS; i++)); do
    name="api-$i"
    port=$((COSTGUARD_CLUSTER_API_PORT + i - 1))
    APP_NAMES+=("$name")
    start_app "$name" "API_PORT=$port" "--no-worker"
    # One at a time: the first creates the API key file the others read.
    for ((j = 0; j < 120; j++)); do
      curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
      kill -0 "${APP_PID[$name]}" 2>/dev/null || { tail -n 20 "$COSTGUARD_CLUSTER_DIR/logs/$name.log" >&2; warn "$name exited during startup"; stop_all 1; }
      sleep 1
    done
    log "$name: pid ${APP_PID[$name]}, http://127.0.0.1:$port, log $COSTGUARD_CLUSTER_DIR/logs/$name.log"
  done
  log "Cost Guard runs on the cluster: $COSTGUARD_CLUSTER_WORKERS workers, $COSTGUARD_CLUSTER_APIS APIs; API key in $COSTGUARD_DATA_DIR/api-key unless API_KEYS is set. Ctrl-C stops everything."
  log "to use the Temporal CLI against it: eval \"\$(bash scripts/cluster.sh env)\"; \"$TEMPORAL_CLI_PATH\" workflow list"
  # Like an orchestrator: a process that dies (a crash, kill -9) is started again; one that dies
  # within 10 s of its start is broken, not unlucky, and ends the run.
  while true; do
    wait -n || true
    for name in "${APP_NAMES[@]}"; do
      kill -0 "${APP_PID[$name]}" 2>/dev/null && continue
      if ((SECONDS - APP_STARTED[$name] < 10)); then
        tail -n 20 "$COSTGUARD_CLUSTER_DIR/logs/$name.log" >&2 || true
        warn "$name exited within 10 s of starting; stopping everything"
        stop_all 1
      fi
      warn "$name (pid ${APP_PID[$name]}) exited; starting it again"
      start_app "$name" "${APP_ENV[$name]}" "${APP_ARGS[$name]}"
      log "$name: pid ${APP_PID[$name]}"
    done
  done
}

# shellcheck source=scripts/setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

case "${1:-up}" in
  up) up ;;
  server)
    bring_up_server
    cluster_env
    ;;
  env) cluster_env ;;
  down) stop_server ;;
  *) die "usage: bash scripts/cluster.sh [up|server|env|down]" ;;
esac
