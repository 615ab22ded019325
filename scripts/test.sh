#!/usr/bin/env bash
# scripts/test.sh: the full check, what `npm test` and CI (.ci/run) run:
#   setup (npm deps, PostgreSQL/Redis/database, Temporal CLI), then
#   eslint -> import cycles (dependency-cruiser) -> tsc --noEmit -> npm run build -> vitest run
# It stops at the first failing step with that step's exit code. Arguments go to vitest, e.g.
#   npm test -- --project unit        npm test -- test/budget.test.ts -t "rollover"

# shellcheck source=scripts/setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# step NAME CMD...: print a header, run CMD, and fail with a message naming the step.
step() {
  local name="$1" rc=0
  shift
  log "=== $name: $* ==="
  "$@" || rc=$?
  if ((rc != 0)); then
    log "FAILED: $name (exit $rc)"
    exit "$rc"
  fi
}

# promtool (`promtool check metrics` on our /metrics output) and docker-compose (`docker-compose
# config` on the compose file) are installed by costguard_prepare below when missing and possible
# (root with apt-get; see ensure_check_tools in setup.sh); otherwise the two checks skip themselves
# with a message saying how to install them.

# `npx --no`: use only the versions pinned in package-lock.json; never let npx fetch a missing tool
# from the registry (it would silently run whatever version is latest).
costguard_prepare # exports TEMPORAL_CLI_PATH, DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS for the tests

step "lint" npx --no -- eslint .
step "import cycles" npx --no -- depcruise --config .dependency-cruiser.mjs src activities workflows test bench
step "typecheck" npx --no -- tsc --noEmit
step "build" npm run build
step "tests" npx --no -- vitest run "$@"

# The cluster leg (whole-suite runs only): the budget integration file and the TLS refusal checks
# against the production-shaped cluster (scripts/cluster.sh: 16 shards, PostgreSQL, mTLS), with the
# temporal-server binary built once into the cache. A missing binary that cannot be built fails the
# run; COSTGUARD_TEST_CLUSTER=0 turns the leg off (say so where you do it).
cluster_leg() {
  local envs rc=0 started=1 pid_file="${COSTGUARD_CLUSTER_DIR:-$COSTGUARD_CACHE_DIR/cluster}/temporal-server.pid"
  if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then started=0; fi
  envs="$(bash scripts/cluster.sh server)" || return 1
  (
    eval "$envs"
    COSTGUARD_TEST_TEMPORAL=cluster npx --no -- vitest run --project integration test/integration/cluster-tls.test.ts test/integration/budget.test.ts
  ) || rc=$?
  # Leave a cluster someone else started running; stop the one we started.
  if ((started)); then bash scripts/cluster.sh down || true; fi
  return "$rc"
}
if (($# == 0)); then
  if [[ "${COSTGUARD_TEST_CLUSTER:-1}" == 0 ]]; then
    log "COSTGUARD_TEST_CLUSTER=0: the cluster leg is OFF (nothing was run against the mTLS cluster)"
  else
    step "cluster" cluster_leg
  fi
fi
log "all checks passed"
