#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another, and
# prints the executions per target and in total. Exit status 1 if any target
# found a crash (its input is left in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh 300                     # five minutes per target
#   FUZZ_TARGETS="up_message" fuzz/run.sh 30
#   FUZZ_SANITIZER=address fuzz/run.sh 60   # default: none (no unsafe code of ours; 2-3x the speed)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on stable
# through RUSTC_BOOTSTRAP=1. The corpus grows in fuzz/corpus/ (not committed);
# the committed seeds are in fuzz/seeds/.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
targets="${FUZZ_TARGETS:-up_message client_frame config}"
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

# Debug assertions on: an arithmetic overflow is a finding too.
cargo fuzz build --sanitizer "$sanitizer" --debug-assertions >/dev/null

mkdir -p run-logs
total=0
failed=()
printf '%-14s %14s %10s %s\n' target executions exec/s result
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="run-logs/$t.log"
    status=ok
    if ! cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 \
        >"$log" 2>&1; then
        status="CRASH (see $log and artifacts/$t/)"
        failed+=("$t")
    fi
    runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)
    rate=$(awk '/stat::average_exec_per_sec/ {print $NF}' "$log" | tail -1)
    runs="${runs:-0}"
    total=$((total + runs))
    printf '%-14s %14s %10s %s\n' "$t" "$runs" "${rate:-?}" "$status"
done
printf '%-14s %14s\n' total "$total"

if ((${#failed[@]})); then
    echo "fuzz/run.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
