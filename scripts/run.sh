#!/usr/bin/env bash
# scripts/run.sh: what `npm start` runs. One command for a working local Cost Guard:
#   1. setup (npm deps, PostgreSQL/Redis/database, Temporal CLI, build)
#   2. a Temporal dev server on TEMPORAL_ADDRESS (reused if something already listens there), with its
#      state in $COSTGUARD_DATA_DIR/temporal.sqlite so workflows survive restarts
#   3. database migrations (costguard migrate)
#   4. the worker + HTTP API in one process (costguard start), until Ctrl-C
# On Ctrl-C / SIGTERM it stops the app first (so the worker can finish its in-flight tasks while the
# server is still up), then the Temporal server if this script started it, and exits 0.

# shellcheck source=scripts/setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

TEMPORAL_READY_TIMEOUT=60 # seconds; first start of a fresh SQLite file takes a few seconds
APP_STOP_TIMEOUT=30       # seconds to let the worker drain before SIGKILL
TEMPORAL_STOP_TIMEOUT=15
CLI_JS="dist/src/cli/main.js"

app_pid=""
temporal_pid=""
stopping=""

# stop_process PID NAME TIMEOUT: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL. Bash reaps its
# background children itself, so `kill -0` turns false as soon as the process has exited.
stop_process() {
  local pid="$1" name="$2" timeout="$3" i
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null || true
    return 0
  }
  log "stopping $name (pid $pid)..."
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name did not stop within ${timeout}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# cleanup: runs once, from the INT/TERM handlers or on any exit (including set -e failures and die),
# so a failed migration never leaves an orphaned Temporal server behind.
cleanup() {
  [[ -z "$stopping" ]] || return 0
  stopping=1
  # Further signals (npm forwards Ctrl-C to us in addition to the terminal's own SIGINT) must not
  # interrupt the orderly shutdown below.
  trap '' INT TERM
  stop_process "$app_pid" "Cost Guard" "$APP_STOP_TIMEOUT"
  app_pid=""
  if [[ -n "$temporal_pid" ]]; then
    stop_process "$temporal_pid" "the Temporal dev server" "$TEMPORAL_STOP_TIMEOUT"
    temporal_pid=""
  fi
}
on_signal() {
  log "$1 received, shutting down"
  cleanup
  exit 0
}
trap cleanup EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

# start_bg LOGFILE CMD...: start CMD in the background in its OWN process group (set -m), with stdin
# from /dev/null. A terminal's Ctrl-C goes to the foreground process group only, so the children do
# not get it directly: this script alone decides the shutdown order (app first, then Temporal).
# Without -m, bash would also start them with SIGINT ignored, which Go and Node then override anyway.
start_bg() {
  local logfile="$1"
  shift
  set -m
  if [[ -n "$logfile" ]]; then
    "$@" </dev/null >>"$logfile" 2>&1 &
  else
    "$@" </dev/null &
  fi
  BG_PID=$!
  set +m
}

temporal_healthy() {
  # Bounded: something that is not Temporal may accept the TCP connection and never answer.
  with_timeout 10 "$TEMPORAL_CLI_PATH" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1
}

# ensure_temporal: reuse a server already listening on TEMPORAL_ADDRESS, else start the dev server.
ensure_temporal() {
  local host port ui_port log_file i
  host="${TEMPORAL_ADDRESS%:*}"
  port="${TEMPORAL_ADDRESS##*:}"
  [[ "$port" =~ ^[0-9]+$ && -n "$host" && "$host" != "$TEMPORAL_ADDRESS" ]] || die "TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS is not host:port"
  ui_port="${TEMPORAL_UI_PORT:-$((port + 1000))}" # the dev server's own default (7233 -> 8233)

  if tcp_listening "$host" "$port"; then
    log "something already listens on $TEMPORAL_ADDRESS: reusing it (not starting a Temporal dev server)"
  else
    is_local_host "$host" || die "no Temporal server answers at $TEMPORAL_ADDRESS, and it is not a local address this script could start one on"
    mkdir -p "$COSTGUARD_DATA_DIR"
    log_file="$COSTGUARD_DATA_DIR/temporal.log"
    log "starting the Temporal dev server on $TEMPORAL_ADDRESS (state: $COSTGUARD_DATA_DIR/temporal.sqlite, log: $log_file)"
    # --ip 127.0.0.1: never expose the unauthenticated dev server beyond this machine.
    start_bg "$log_file" "$TEMPORAL_CLI_PATH" server start-dev \
      --db-filename "$COSTGUARD_DATA_DIR/temporal.sqlite" \
      --port "$port" --ui-port "$ui_port" --ip 127.0.0.1 --log-level warn
    temporal_pid="$BG_PID"
  fi

  log "waiting for Temporal at $TEMPORAL_ADDRESS (up to ${TEMPORAL_READY_TIMEOUT}s)..."
  for ((i = 0; i < TEMPORAL_READY_TIMEOUT; i++)); do
    temporal_healthy && break
    if [[ -n "$temporal_pid" ]] && ! kill -0 "$temporal_pid" 2>/dev/null; then
      wait "$temporal_pid" 2>/dev/null || true
      temporal_pid=""
      log "last lines of $log_file:"
      tail -n 20 "$log_file" >&2 || true
      die "the Temporal dev server exited during startup (is port $port or $ui_port in use? see $log_file)"
    fi
    sleep 1
  done
  temporal_healthy || die "Temporal at $TEMPORAL_ADDRESS is not healthy after ${TEMPORAL_READY_TIMEOUT}s${log_file:+ (see $log_file)}"

  if [[ -n "$temporal_pid" ]]; then
    log "Temporal is ready: gRPC $TEMPORAL_ADDRESS, Web UI http://127.0.0.1:$ui_port"
  elif have curl && curl -fsS -o /dev/null --max-time 3 "http://$host:$ui_port/" 2>/dev/null; then
    log "Temporal is ready: gRPC $TEMPORAL_ADDRESS, Web UI http://$host:$ui_port"
  else
    log "Temporal is ready: gRPC $TEMPORAL_ADDRESS (the Web UI is wherever that server serves it; the dev server default is http://$host:$ui_port)"
  fi
}

costguard_prepare
[[ -f "$CLI_JS" ]] || die "$CLI_JS was not produced by 'npm run build' (expected the CLI entry point src/cli/main.ts)"
ensure_temporal

log "running database migrations (costguard migrate)..."
node "$CLI_JS" migrate || die "migrations failed (see above); DATABASE_URL=$DATABASE_URL"

log "starting Cost Guard (worker + API); press Ctrl-C to stop"
start_bg "" node "$CLI_JS" start
app_pid="$BG_PID"
# `wait` (unlike a foreground child) returns as soon as a trapped signal arrives, so the handler runs
# immediately. If the app exits on its own, pass its exit status on (cleanup still stops Temporal).
rc=0
wait "$app_pid" || rc=$?
app_pid=""
if ((rc != 0)); then
  log "Cost Guard exited with status $rc"
else
  log "Cost Guard exited"
fi
exit "$rc"
