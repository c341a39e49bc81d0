# Stable entry points; later work extends these targets rather than renaming them.
.PHONY: build test crds crds-check demo testplane-up testplane-down fmt lint

build:
	cargo build --workspace --bins --locked

test:
	bash scripts/test.sh

crds:
	cargo run -q --locked -p sympozium-api --bin crdgen -- --out deploy/crds

crds-check:
	cargo run -q --locked -p sympozium-api --bin crdgen -- --out deploy/crds --check

demo:
	bash scripts/demo.sh

testplane-up:
	@bash testplane/up.sh

testplane-down:
	@bash testplane/down.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
