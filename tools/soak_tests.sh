#!/usr/bin/env bash
# Soak test: the whole test suite several times in a row while every core is kept busy.
#
#   tools/soak_tests.sh [ROUNDS] [PYTEST ARGS...]
#
#   tools/soak_tests.sh                  # the whole suite 3 times (what to run before resolving an issue)
#   tools/soak_tests.sh 5                # 5 rounds
#   tools/soak_tests.sh 1 tests/energy   # a quick check of the script itself on a subset
#
# A test that passes on a quiet machine and fails under load depends on timing; tests must use
# injected clocks or counts instead (see tests/energy/_clock.py). This script finds such tests:
# it starts one busy loop per core (SOAK_LOAD=N to choose how many, 0 for none), runs
# `python -m pytest -q [PYTEST ARGS]` ROUNDS times, prints PASS or FAIL with the time of each
# round, stops at the first failure and prints the total time. The busy loops are ended on any
# exit (including Ctrl-C). Each round's output is kept in a log folder, printed at the end.
#
# Exit status: 0 when every round passed, else the failing round's pytest status (2 for usage).
# Not for CI, which runs the suite once: a full soak takes several times the suite's duration.
# PYTHON=... selects the interpreter (default: python).

set -u

rounds=${1:-3}
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: ROUNDS must be a positive whole number, got '$rounds' (usage: $0 [ROUNDS] [PYTEST ARGS...])" >&2
    exit 2
fi
[ $# -gt 0 ] && shift
py=${PYTHON:-python}
load=${SOAK_LOAD:-$(nproc 2>/dev/null || echo 2)}
if ! [[ "$load" =~ ^[0-9]+$ ]]; then
    echo "error: SOAK_LOAD must be a whole number, got '$load'" >&2
    exit 2
fi

setsid=$(command -v setsid || true)
cd "$(dirname "$0")/.." || exit 2
logs=$(mktemp -d "${TMPDIR:-/tmp}/edgebrain-soak.XXXXXX") || exit 2

pids=()      # the busy loops
suite=""     # the running pytest
stop_all() {
    # the suite's whole process group: its helper processes (meter emulators, servers) too
    [ -n "$suite" ] && { kill -TERM -- "-$suite" 2>/dev/null || kill "$suite" 2>/dev/null; }
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in $suite "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    pids=()
    suite=""
}
trap stop_all EXIT
trap 'echo "interrupted" >&2; stop_all; exit 130' INT TERM

for ((i = 0; i < load; i++)); do
    "$py" -c "while True: pass" &
    pids+=($!)
done
echo "soak: $rounds round(s) of: $py -m pytest -q $*  (load: $load busy loop(s); logs in $logs)"

start=$SECONDS
status=0
for ((r = 1; r <= rounds; r++)); do
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || echo "warning: busy loop $p has ended; the load is lighter than asked" >&2
    done
    t0=$SECONDS
    log="$logs/round-$r.log"
    # in the background (so that a signal to this script is handled at once) and in a process group
    # of its own (so that stopping it stops its helper processes)
    # a background job of a script starts with SIGINT ignored, which its children inherit: restore
    # Ctrl-C's default so that the tests that interrupt a command see what a user's shell gives
    $setsid "$py" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable, "-m", "pytest", "-q"] + sys.argv[1:])' "$@" >"$log" 2>&1 &
    suite=$!
    wait "$suite"
    rc=$?
    suite=""
    summary=$(grep -E " in [0-9.]+s" "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "round $r/$rounds: PASS in $((SECONDS - t0)) s  ($summary)"
    else
        echo "round $r/$rounds: FAIL in $((SECONDS - t0)) s, pytest exit status $rc  ($summary)"
        echo "---- last 40 lines of $log"
        tail -n 40 "$log"
        status=$rc
        break
    fi
done
stop_all
echo "soak: $([ $status -eq 0 ] && echo "all $rounds round(s) passed" || echo "stopped at round $r") in $((SECONDS - start)) s; logs in $logs"
exit $status
