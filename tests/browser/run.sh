#!/usr/bin/env bash
# Browser tests of the web client (issue 4): headless system Chromium driven
# by playwright-core, against the real server binary.
#
#   tests/browser/run.sh              build the server (release), run the tests
#   HUAYI_BIN=path run.sh             test that binary, no build
#   HUAYI_URL=http://host:port run.sh test a server that is already running
#   CHROMIUM=/path/to/chromium        another browser executable
#
# The test harness (harness.mjs) starts the binary on a free loopback port
# with short heartbeat settings (pong 1 s, idle 10 s), stops it with SIGTERM
# at the end and checks that it exits 0. Screenshots and the server's log go
# to tests/browser/artifacts/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "run.sh: no browser at $chromium; install Debian's: apt-get install -y chromium" >&2
  exit 1
fi

cd "$here"
# The lockfile pins playwright-core; it never downloads a browser.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

if [ -z "${HUAYI_URL:-}" ] && [ -z "${HUAYI_BIN:-}" ]; then
  (cd "$root" && cargo build --release --locked -p huayi-im --bin huayi-im)
  export HUAYI_BIN="$root/target/release/huayi-im"
fi

rm -rf "$here/artifacts"
mkdir -p "$here/artifacts"
exec node --test --test-concurrency=1 --test-timeout=180000 "$here"/*.test.mjs
