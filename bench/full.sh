#!/usr/bin/env bash
# The full-size run behind BENCHMARKS.md: every scenario at issue 3's sizes
# (~4 minutes on 2 cores), latency picture to bench/latency.svg.
# Extra arguments go to im-bench, e.g. `bench/full.sh --json > run.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p huayi-im -p im-bench
exec ./target/release/im-bench all --spawn --full --svg bench/latency.svg "$@"
