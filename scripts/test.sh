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
log "all checks passed"
