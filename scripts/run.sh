#!/usr/bin/env bash
# scripts/run.sh: what `npm start` runs. One command for a working local Cost Guard:
#   1. setup (npm deps, PostgreSQL/Redis/database, Temporal CLI, build)
#   2. a Temporal dev server on TEMPORAL_ADDRESS (reused if something already listens there), with its
#      state in $COSTGUARD_DATA_DIR/temporal.sqlite so workflows survive restarts
#   3. database migrations (costguard migrate)
#   4. the worker + HTTP API in one process (costguard start), until Ctrl-C
#
# Stopping: Ctrl-C, SIGTERM, SIGHUP (terminal closed), SIGQUIT, or the death of the process that
# started this script (npm killed alone: its `sh -c` dies without passing the signal on) all end the
# same way: the app first (the worker finishes its in-flight tasks while the server is still up),
# then the Temporal server if this script started it, each with a bounded wait and then SIGKILL of
# its whole process group, and exit 0. A dead stdout/stderr (`npm start | tee log` where tee dies
# on the same Ctrl-C, or a reader killed earlier, or a closed terminal) cannot interrupt that: every
# byte we and our children write goes through relays of our own (below) that never die before
# their writers, and this script ignores SIGPIPE.
#
# Environment (besides the connection settings in scripts/lib.sh):
#   TEMPORAL_ADDRESS        host:port of Temporal (default 127.0.0.1:7233); sets the port of the dev server
#   TEMPORAL_UI_PORT        Web UI port of the dev server (default: the gRPC port + 1000, e.g. 8233)
#   TEMPORAL_SQLITE_PRAGMAS space-separated PRAGMA=VALUE for the dev server's SQLite file, passed as
#                           --sqlite-pragma (default "journal_mode=wal synchronous=normal";
#                           "" = SQLite's own defaults, a rollback journal and synchronous=FULL)
#   COSTGUARD_SKIP_BUILD=1  use the dist/ already built instead of running `npm run build`
#   LOG_FORMAT              pretty | json | auto (default: pretty when stdout is a terminal, else JSON)

# --- 1. Our own watchdog: die with the parent ------------------------------------------------------
# npm runs us as `sh -c 'bash scripts/run.sh'`. `kill <npm pid>` makes npm forward SIGTERM to that sh
# only; sh dies and we would never hear of it, leaving the app and the Temporal server running. With
# a parent-death signal (Linux prctl, through util-linux setpriv) the kernel sends us SIGHUP when our
# parent exits, whatever killed it. exec keeps our pid, so the parent stays the same.
if [[ -z "${COSTGUARD_RUN_PDEATHSIG:-}" ]] && command -v setpriv >/dev/null 2>&1 &&
  setpriv --pdeathsig HUP -- true >/dev/null 2>&1; then
  export COSTGUARD_RUN_PDEATHSIG=1
  exec setpriv --pdeathsig HUP -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
unset COSTGUARD_RUN_PDEATHSIG

# Logs: human-readable (pino-pretty) when our stdout is a terminal. Decided here, before the relays
# below turn stdout into a pipe that the app could not tell from `npm start | tee log` (JSON then).
if [[ -z "${LOG_FORMAT:-}" && -t 1 ]]; then export LOG_FORMAT=pretty; fi

# --- 2. Output relays ------------------------------------------------------------------------------
# Before anything else writes: our stdout and stderr become pipes into `tee -p /dev/null` processes
# that copy to the real stdout/stderr. `-p` (--output-error=warn-nopipe) makes tee ignore
# SIGPIPE and, when its stdout is a pipe whose reader has gone (or a hung-up terminal), drop that
# output and keep draining into /dev/null, so the app and this script never get EPIPE/SIGPIPE or EIO
# (Node would throw on its next console write; bash would die in the middle of the cleanup). The
# relays ignore INT/TERM/HUP/QUIT (a terminal signals our whole process group) and exit by themselves
# at end of input, i.e. once this script and every child holding the pipes have exited.
# When stdout and stderr are the same terminal, pipe or file (`2>&1 | tee`, `> log 2>&1`), one relay
# carries both, so their lines stay in the order they were written.
if tee -p /dev/null </dev/null >/dev/null 2>&1; then
  exec 3>&1 4>&2
  exec 1> >(trap '' INT TERM HUP QUIT PIPE; exec tee -p /dev/null >&3 2>/dev/null 3>&- 4>&-)
  RELAY_OUT_PID=$!
  if [[ /dev/fd/3 -ef /dev/fd/4 ]]; then
    exec 2>&1
    RELAY_ERR_PID=""
  else
    exec 2> >(trap '' INT TERM HUP QUIT PIPE; exec tee -p /dev/null >&4 2>/dev/null 3>&- 4>&-)
    RELAY_ERR_PID=$!
  fi
  exec 3>&- 4>&-
else
  RELAY_OUT_PID="" RELAY_ERR_PID="" # no GNU tee: write directly (SIGPIPE is still ignored below)
fi
# A write to a dead pipe returns EPIPE instead of killing us; our children inherit this (Node ignores
# SIGPIPE anyway; the Temporal server writes to its log file).
trap '' PIPE

# shellcheck source=scripts/setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# Messages must never fail: under set -e a failed printf (EPIPE if a relay were gone) would end the
# script in the middle of stopping its children.
log() { printf '[costguard] %s\n' "$*" >&2 || true; }
warn() { printf '[costguard] warning: %s\n' "$*" >&2 || true; }
die() {
  printf '[costguard] error: %s\n' "$*" >&2 || true
  exit 1
}

TEMPORAL_READY_TIMEOUT=60 # seconds; first start of a fresh SQLite file takes a few seconds
APP_STOP_TIMEOUT=30       # seconds to let the worker drain before SIGKILL
TEMPORAL_STOP_TIMEOUT=15
RELAY_FLUSH_TIMEOUT=3 # seconds to let the relays write out the last lines before we exit
CLI_JS="dist/src/cli/main.js"
# SQLite settings for the dev server's file (README, Quick start): with the write-ahead log and
# synchronous=NORMAL a commit is an append to temporal.sqlite-wal without an fsync (checkpoints fsync),
# instead of a rollback journal written, fsynced and deleted on every commit. The dev server runs all
# its services over ONE connection to this file, so every commit's cost is paid in series. A crash
# of the server loses nothing; a power cut or OS crash may lose the last commits, never the file.
TEMPORAL_SQLITE_PRAGMAS="${TEMPORAL_SQLITE_PRAGMAS-journal_mode=wal synchronous=normal}"

app_pid=""
temporal_pid=""
stopping=""

# group_alive PID: true while any process of the process group PID leads is alive.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# stop_process PID NAME TIMEOUT: SIGTERM to PID, wait up to TIMEOUT seconds for its whole process
# group (start_bg makes each child a group leader) to be gone, then SIGKILL the group. Bash reaps its
# background children itself, so `kill -0` turns false as soon as a process has exited.
stop_process() {
  local pid="$1" name="$2" timeout="$3" i
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)..."
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < timeout * 5; i++)); do
    group_alive "$pid" || break
    sleep 0.2
  done
  if group_alive "$pid"; then
    warn "$name did not stop within ${timeout}s; killing it (process group $pid)"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# flush_relays: close our ends of the relay pipes and give the relays a moment to copy the last lines
# out, so that the shell prompt does not come back before "stopped". Bounded: a child that somehow
# survived would hold the pipes open.
flush_relays() {
  local i pid alive
  [[ -n "${RELAY_OUT_PID}${RELAY_ERR_PID}" ]] || return 0
  exec 1>/dev/null 2>/dev/null
  for ((i = 0; i < RELAY_FLUSH_TIMEOUT * 10; i++)); do
    alive=""
    for pid in $RELAY_OUT_PID $RELAY_ERR_PID; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [[ -n "$alive" ]] || return 0
    sleep 0.1
  done
}

# cleanup: runs once, from the signal handlers or on any exit (including set -e failures and die),
# so a failed migration never leaves an orphaned Temporal server behind.
cleanup() {
  # Further signals (npm forwards Ctrl-C to us in addition to the terminal's own SIGINT; our parent's
  # death sends SIGHUP right after it) must not interrupt the orderly shutdown below. One that lands
  # before this line runs on_signal, which returns at once when a shutdown is already under way.
  trap '' INT TERM HUP QUIT
  [[ -z "$stopping" ]] || return 0
  stopping=1
  set +e
  stop_process "$app_pid" "Cost Guard" "$APP_STOP_TIMEOUT"
  app_pid=""
  if [[ -n "$temporal_pid" ]]; then
    stop_process "$temporal_pid" "the Temporal dev server" "$TEMPORAL_STOP_TIMEOUT"
    temporal_pid=""
    log "stopped"
  fi
  flush_relays
}
on_signal() {
  [[ -z "$stopping" ]] || return 0
  log "$1 received, shutting down"
  cleanup
  exit 0
}
trap cleanup EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGHUP' HUP
trap 'on_signal SIGQUIT' QUIT

# start_bg LOGFILE CMD...: start CMD in the background in its OWN process group (set -m), with stdin
# from /dev/null. A terminal's Ctrl-C goes to the foreground process group only, so the children do
# not get it directly: this script alone decides the shutdown order (app first, then Temporal).
# Without -m, bash would also start them with SIGINT ignored, which Go and Node then override anyway.
# Each child also gets SIGTERM from the kernel if this script dies without cleaning up (SIGKILL):
# the last resort against orphans.
start_bg() {
  local logfile="$1" pdeath=()
  shift
  have setpriv && pdeath=(setpriv --pdeathsig TERM --)
  set -m
  if [[ -n "$logfile" ]]; then
    ${pdeath[@]+"${pdeath[@]}"} "$@" </dev/null >>"$logfile" 2>&1 &
  else
    ${pdeath[@]+"${pdeath[@]}"} "$@" </dev/null &
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
  local host port ui_port log_file i pragma pragma_args=()
  host="${TEMPORAL_ADDRESS%:*}"
  port="${TEMPORAL_ADDRESS##*:}"
  [[ "$port" =~ ^[0-9]+$ && -n "$host" && "$host" != "$TEMPORAL_ADDRESS" ]] || die "TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS is not host:port"
  ui_port="${TEMPORAL_UI_PORT:-$((port + 1000))}" # the dev server's own default (7233 -> 8233)
  [[ "$ui_port" =~ ^[0-9]+$ ]] || die "TEMPORAL_UI_PORT=$ui_port is not a port number"

  if tcp_listening "$host" "$port"; then
    log "something already listens on $TEMPORAL_ADDRESS: reusing it (not starting a Temporal dev server)"
  else
    is_local_host "$host" || die "no Temporal server answers at $TEMPORAL_ADDRESS, and it is not a local address this script could start one on"
    for pragma in $TEMPORAL_SQLITE_PRAGMAS; do
      [[ "$pragma" =~ ^[A-Za-z_]+=[A-Za-z0-9_-]+$ ]] || die "TEMPORAL_SQLITE_PRAGMAS: '$pragma' is not PRAGMA=VALUE"
      pragma_args+=(--sqlite-pragma "$pragma")
    done
    mkdir -p "$COSTGUARD_DATA_DIR"
    log_file="$COSTGUARD_DATA_DIR/temporal.log"
    log "starting the Temporal dev server on $TEMPORAL_ADDRESS (state: $COSTGUARD_DATA_DIR/temporal.sqlite${TEMPORAL_SQLITE_PRAGMAS:+, SQLite $TEMPORAL_SQLITE_PRAGMAS}, log: $log_file)"
    # --ip 127.0.0.1: never expose the unauthenticated dev server beyond this machine.
    start_bg "$log_file" "$TEMPORAL_CLI_PATH" server start-dev \
      --db-filename "$COSTGUARD_DATA_DIR/temporal.sqlite" \
      --port "$port" --ui-port "$ui_port" --ip 127.0.0.1 --log-level warn \
      ${pragma_args[@]+"${pragma_args[@]}"}
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
    export TEMPORAL_UI_URL="${TEMPORAL_UI_URL:-http://127.0.0.1:$ui_port}" # for the app's start banner
    log "Temporal is ready: gRPC $TEMPORAL_ADDRESS, Web UI $TEMPORAL_UI_URL"
  elif have curl && curl -fsS -o /dev/null --max-time 3 "http://$host:$ui_port/" 2>/dev/null; then
    export TEMPORAL_UI_URL="${TEMPORAL_UI_URL:-http://$host:$ui_port}"
    log "Temporal is ready: gRPC $TEMPORAL_ADDRESS, Web UI $TEMPORAL_UI_URL"
  else
    log "Temporal is ready: gRPC $TEMPORAL_ADDRESS (the Web UI is wherever that server serves it; the dev server default is http://$host:$ui_port)"
  fi
}

if [[ "${COSTGUARD_SKIP_BUILD:-}" == 1 ]]; then
  costguard_prepare
  log "COSTGUARD_SKIP_BUILD=1: using the dist/ already built"
else
  costguard_setup
fi
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
