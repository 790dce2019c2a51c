#!/bin/sh
# npm test: the type check runs beside jest rather than before it (it only reads the sources), and
# either one failing fails the run. Arguments go to jest (CI: --json --outputFile=...).
tsc -p . --noEmit &
typecheck=$!
jest "$@"
status=$?
wait "$typecheck" || { echo 'npm test: the type check failed (tsc -p . --noEmit)' >&2; status=1; }
exit $status
