#!/usr/bin/env bash
# scripts/bench.sh: what `npm run bench` runs. Set up everything (services, Temporal CLI, build), then
# run the benchmark driver with tsx; arguments are passed through:  npm run bench -- --help

# shellcheck source=scripts/setup.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

costguard_setup
[[ -f bench/run.ts ]] || die "bench/run.ts does not exist (yet) in $COSTGUARD_ROOT"
log "running the benchmark: npx tsx bench/run.ts $*"
# `npx --no`: only the locally installed tsx, never a registry download.
# exec: signals (Ctrl-C) go straight to the benchmark and its exit code is ours.
exec npx --no -- tsx bench/run.ts "$@"
