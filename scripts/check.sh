#!/usr/bin/env bash
# The checks before the suites: type-check and lint side by side (each leaves a core idle for most of its
# run), failing if either fails.
set -u
npm run -s typecheck &
typecheck=$!
npm run -s lint
lint=$?
wait "$typecheck"
typecheck=$?
exit $((lint || typecheck))
