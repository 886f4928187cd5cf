# Huayi IM — the commands the README promises.
.PHONY: run test e2e lint build test-browser bench bench-smoke fuzz soak

# Serve on 0.0.0.0:8080 with built-in defaults (config.yaml / HUAYI_* / flags override).
run:
	cargo run --release -p huayi-im

build:
	cargo build --release --workspace

# Unit tests and the end-to-end suite (real server, real HTTP and WebSocket).
test:
	cargo test --workspace

e2e:
	cargo test -p huayi-im --test e2e

# The gate: formatting and clippy with warnings as errors; the fuzz targets
# (their own crate, outside the workspace) must still compile.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo check --manifest-path fuzz/Cargo.toml

# The web client in headless Debian Chromium via playwright-core (needs
# `apt-get install chromium`; npm packages come from the lockfile).
test-browser:
	tests/browser/run.sh

# Every im-bench scenario at a ~2-minute size against a spawned server; table at the end.
bench:
	cargo build --release -p huayi-im -p im-bench
	target/release/im-bench all --spawn --svg target/bench-latency.svg

# A few seconds of every scenario; fails only on loss or errors (no timing assertions).
bench-smoke:
	cargo build -p huayi-im -p im-bench
	target/debug/im-bench all --spawn --smoke

# Every fuzz target for FUZZ_SECONDS each (default 60); installs cargo-fuzz once (~35 s).
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	fuzz/run.sh $(or $(FUZZ_SECONDS),60)

# 30 minutes of mixed load with churn (not in CI); SOAK_DURATION=2m for a quick check.
soak:
	scripts/soak.sh $(or $(SOAK_DURATION),30m)
