# Stable entry points; later work extends these targets rather than renaming them.
.PHONY: build test crds crds-check demo dev-up dev-down demo-down testplane-up testplane-down fmt lint

build:
	cargo build --workspace --bins --locked

test:
	bash scripts/test.sh

crds:
	cargo run -q --locked -p sympozium-api --bin crdgen -- --out deploy/crds
	cargo run -q --locked -p sympozium-api --bin crdgen -- --out deploy/helm/sympozium/crds

# Every fuzz target (tests/fuzz.rs of the parsing crates) for FUZZ_TIME (60s) each under
# libFuzzer (nightly, cargo-bolero installed into ~/.cache/sympozium-fuzz); FUZZ_ENGINE=random
# runs bolero's random engine on stable instead. `make test` runs each for about a second.
.PHONY: fuzz
fuzz:
	bash scripts/fuzz.sh

# The web dashboard: build web/ into crates/sympozium-apiserver/ui-dist (committed, so cargo
# never needs Node), and regenerate its TypeScript types and docs/openapi.json from the Rust types.
.PHONY: web web-types openapi
web:
	cd web && npm ci --no-audit --no-fund && npm run build

web-types openapi:
	UPDATE_OPENAPI=1 cargo test -q --locked -p sympozium-apiserver --test generated the_committed

crds-check:
	cargo run -q --locked -p sympozium-api --bin crdgen -- --out deploy/crds --check
	cargo run -q --locked -p sympozium-api --bin crdgen -- --out deploy/helm/sympozium/crds --check

# OCI image archives of every component under target/images (buildah, from scratch, as root).
# IMAGES_ARGS="--profile debug controller webhook" builds a subset from debug binaries.
.PHONY: images chart helm
images:
	bash scripts/images.sh $(IMAGES_ARGS)

# The Helm chart's generated files: CRDs and the built-ins (the NATS trust chain is per
# installation: `sympozium install` or `sympozium nats-trust` makes it).
chart: crds
	rm -f deploy/helm/sympozium/files/builtin/*.yaml
	cp deploy/builtin/*.yaml deploy/helm/sympozium/files/builtin/
	SYMPOZIUM_UPDATE_CHART=1 cargo test -q --locked -p sympozium-cli --test helm_chart -- generated_chart_files_match_the_code

# The helm CLI for the chart tests, built from its Go module and cached (prints its path).
helm:
	@bash testplane/helm/build.sh

demo:
	bash scripts/demo.sh

# The one-machine stack on its own (what `make demo` starts), and stopping it.
# DEV_UP_ARGS=--real-images runs the components from their OCI images (needs root, buildah).
dev-up:
	cargo build -q --locked --workspace --bins
	target/debug/sympozium dev up $(DEV_UP_ARGS)

dev-down demo-down:
	-@if [ -f target/demo-dashboard.pid ]; then kill "$$(cat target/demo-dashboard.pid)" 2>/dev/null; rm -f target/demo-dashboard.pid; fi
	target/debug/sympozium dev down

testplane-up:
	@bash testplane/up.sh

testplane-down:
	@bash testplane/down.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Agent runner overhead against the fake LLM: start -> first request, per-tool-call gap.
.PHONY: bench-runner
bench-runner:
	cargo build --release --locked -p sympozium-agent-runner --bins --examples
	target/release/examples/bench target/release/sympozium-agent-runner

# Cost of OpenTelemetry export per run: off vs. exporting to a real collector (gRPC, HTTP)
# vs. a collector that is down. BENCH_TELEMETRY_RUNS sets the runs per mode (default 30).
.PHONY: bench-telemetry
bench-telemetry:
	cargo build --release --locked -p sympozium-agent-runner --bins --examples
	target/release/examples/telemetry_bench target/release/sympozium-agent-runner $(BENCH_TELEMETRY_RUNS)

# Memory server: store throughput and search latency p50/p99 at 10k/100k/1M memories.
# Override sizes with BENCH_MEMORY_ARGS="--sizes 10000,100000". Never part of `make test`.
.PHONY: bench-memory
bench-memory:
	cargo run --release --locked -p sympozium-memory --bin sympozium-memory-bench -- $(BENCH_MEMORY_ARGS)

# Channel router: chat message -> AgentRun created latency p50/p99 over BENCH_MESSAGES (1000)
# messages in new chats, then BENCH_CHAT_MESSAGES (1000) answered messages in one chat, on the
# test plane with a real nats-server. Never part of `make test`.
.PHONY: bench-channel-router
bench-channel-router:
	cargo run --release --locked -p sympozium-controller --example channel_router_bench

# Channel pods: reply latency bus -> platform API (p50/p95) and outbound/inbound burst
# throughput, against the fake Telegram API and a real nats-server. Never part of `make test`.
.PHONY: bench-channels
bench-channels:
	cargo run --release --locked -p sympozium-channels --example channel_bench

# TUI responsiveness: key press -> frame drawn, p50/p99, with 500 instances and 5,000 runs
# fed to the app state. Never part of `make test`.
.PHONY: bench-tui
bench-tui:
	cargo build --release --locked -p sympozium-cli --example bench_tui
	target/release/examples/bench_tui

# The same through the TUI's own watches on the test control plane, runs changing meanwhile.
.PHONY: bench-tui-cluster
bench-tui-cluster:
	cargo build --release --locked -p sympozium-cli --example bench_tui
	target/release/examples/bench_tui --cluster

# Web proxy: streamed chat request -> first token, the overhead the proxy adds (p50/p99),
# on the test plane with a real nats-server. BENCH_WEB_PROXY_ARGS="--requests 500".
# Never part of `make test`.
.PHONY: bench-web-proxy
bench-web-proxy:
	cargo run --release --locked -p sympozium-web-proxy --example web_proxy_bench -- $(BENCH_WEB_PROXY_ARGS)

# Local node (sympozium-node): pod start latency, bound -> all containers running, p50/p99
# over BENCH_PODS (100) busybox pods, one at a time and as a burst, on the test plane.
# Needs root, bubblewrap and busybox. Never part of `make test`.
.PHONY: bench-node
bench-node:
	cargo build --release --locked -p sympozium-node --bins --examples
	target/release/examples/node_bench target/release/sympozium-node

# NetworkPolicy on the local node: rules recomputation, policy change -> enforced latency,
# per-connection cost of the filter. Needs root, bubblewrap, busybox and nftables.
.PHONY: bench-netpol
bench-netpol:
	cargo build --release --locked -p sympozium-node --bins --examples
	target/release/examples/netpol_bench target/release/sympozium-node
# MCP tool-call round trip (runner tool -> /ipc files -> bridge -> rmcp Streamable HTTP server
# and back) p50/p99 over BENCH_MCP_CALLS (1000) sequential calls, beside the bare rmcp call.
BENCH_MCP_CALLS ?= 1000
.PHONY: bench-mcp
bench-mcp:
	cargo run --release --locked -p sympozium-mcp-bridge --example bench_roundtrip -- --calls $(BENCH_MCP_CALLS)

# API p50/p99 of the list routes with 1,000 instances and the dashboard's load time in chromium
# with 5,000 runs, against a running test plane (make testplane-up; export TESTPLANE_KUBECONFIG).
.PHONY: bench-api
bench-api:
	cargo run --release --locked -p sympozium-apiserver --example api_bench -- $(BENCH_API_ARGS)

# Soak: 1,000 chat messages to 20 instances over Telegram, Slack and Discord (protocol fakes)
# through the real controller (two replicas), channel binaries and nats-server, with NATS
# restarts, channel pod and controller kill -9 at random; prints messages, replies,
# duplicates, lost, p99 latency, restarts survived, and fails on anything lost or doubled.
# SOAK_ARGS="--messages 60 --instances 3 --faults 3" for a quick one. Never part of `make test`.
.PHONY: soak
soak:
	cargo build --locked -p sympozium-controller -p sympozium-channels --bins
	cargo run --locked -p sympozium-channels --example soak -- $(SOAK_ARGS)

# Leader failover of the controller manager: 10 kill -9s of the leading replica on the test
# plane; prints p50/max of kill -> Lease taken over and kill -> new leader acting (a run
# created after the kill got its Job). Debug build: the figures are lease timing, not CPU.
# FAILOVER_ARGS="--lease-secs 6 --retry-ms 1000" measures other lease settings.
.PHONY: bench-failover
bench-failover:
	cargo build --locked -p sympozium-controller --bins --examples
	target/debug/examples/failover $(FAILOVER_ARGS)

# Controller at load, as its own process on the test plane: 7-persona pack enable -> Ready,
# 100 AgentRuns -> Jobs (p50/p99), 1,000 instances converged, peak/settled RSS, API
# connections, pod log reads per pod; the controller built as clusters run it (profile dist).
# BENCH_CONTROLLER_ARGS="--instances 200 --runs 50".
.PHONY: bench-controller
bench-controller:
	cargo build --profile dist --locked -p sympozium-controller --bin sympozium-controller
	cargo build --release --locked -p sympozium-controller --example controller_bench
	target/release/examples/controller_bench target/dist/sympozium-controller $(BENCH_CONTROLLER_ARGS)

# Controller at scale, as its own process on the test plane: 1,000 instances and 3 PersonaPacks
# enabled at once, then 10,000 AgentRuns (pods run by the fake kwok node) -> convergence times,
# API requests per object (kube-apiserver's apiserver_request_total before/after, by verb and
# resource, and the controller's own sympozium_api_requests_total), controller CPU seconds,
# peak/settled RSS. BENCH_SCALE_ARGS="--instances 50 --runs 200". Never part of `make test`.
.PHONY: bench-scale
bench-scale:
	cargo build --profile dist --locked -p sympozium-controller --bin sympozium-controller
	cargo build --release --locked -p sympozium-controller --example scale_bench
	target/release/examples/scale_bench target/dist/sympozium-controller $(BENCH_SCALE_ARGS)
