#!/usr/bin/env bash
# scripts/setup.sh: everything needed before Cost Guard can run, in one idempotent step:
#   1. npm dependencies (npm ci, only when node_modules is missing or stale)
#   2. PostgreSQL + Redis reachable, database created          (scripts/services.sh)
#   3. the Temporal CLI (dev server) found or built once       (scripts/temporal-cli.sh)
#   4. npm run build (tsc -> dist/)
#
#   bash scripts/setup.sh
#   . scripts/setup.sh; costguard_prepare   # steps 1-3 only, exports TEMPORAL_CLI_PATH
#   . scripts/setup.sh; costguard_setup     # steps 1-4, exports TEMPORAL_CLI_PATH
# test.sh, run.sh and bench.sh source this file so that TEMPORAL_CLI_PATH ends up in THEIR
# environment (a child process could not export it back to them).

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/services.sh
. "$COSTGUARD_ROOT/scripts/services.sh"
# shellcheck source=scripts/temporal-cli.sh
. "$COSTGUARD_ROOT/scripts/temporal-cli.sh"

costguard_prepare() {
  local cli
  ensure_node_modules
  ensure_services
  # Separate assignment and export: `export X="$(cmd)"` would hide a failure of cmd from set -e.
  cli="$(temporal_cli_path)"
  TEMPORAL_CLI_PATH="$cli"
  export TEMPORAL_CLI_PATH
  log "Temporal CLI: $TEMPORAL_CLI_PATH"
}

costguard_build() {
  log "building (npm run build)..."
  # npm's stdout goes to stderr so that nothing but requested values ever reaches our stdout.
  npm run build >&2 || die "npm run build failed (see the TypeScript errors above)"
}

costguard_setup() {
  costguard_prepare
  costguard_build
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  costguard_setup
  log "setup complete"
fi
