#!/usr/bin/env bash
# scripts/test.sh: the full check, what `npm test` and CI (.ci/run) run:
#   setup (npm deps, PostgreSQL/Redis/database, Temporal CLI), then
#   eslint -> tsc --noEmit -> npm run build -> vitest run
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

# promtool (Prometheus' rule/metrics checker) is not installed here. Even when apt-get is available and
# we are root, this script deliberately installs nothing: test runs must not change the machine, and
# whether/how alert rules get validated is a separate, later decision. Tests that need promtool should
# skip themselves when `command -v promtool` fails.

# `npx --no`: use only the versions pinned in package-lock.json; never let npx fetch a missing tool
# from the registry (it would silently run whatever version is latest).
costguard_prepare # exports TEMPORAL_CLI_PATH, DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS for the tests

step "lint" npx --no -- eslint .
step "typecheck" npx --no -- tsc --noEmit
step "build" npm run build
step "tests" npx --no -- vitest run "$@"
log "all checks passed"
