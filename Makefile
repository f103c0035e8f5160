# opportunity-disassociator: the steps a person (or CI, through .ci/run) takes.
# `make` alone lists them. Tool-using targets install the pinned tools they need by themselves
# (tools/venv.sh: .venv/ and .venv-checkov/), so a fresh machine needs only rustup, gcc, python3, make.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-print-directory

ENV ?= dev
REGION ?= us-east-1
# The two functions, each its own binary: the worker and the webhook.
BINS := opportunity-disassociator opportunity-disassociator-webhook
ARM64_TARGET := aarch64-unknown-linux-gnu
# Where cargo builds: CARGO_TARGET_DIR when set (scripts read it the same way), else target/.
export TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),$(CURDIR)/target))
LAMBDA_DIR := $(TARGET_DIR)/lambda

# Either venv may live elsewhere (make VENV=/path ...): its stamp and its install follow it.
VENV := $(CURDIR)/.venv
VENV_STAMP := $(VENV)/.tools-stamp
CHECKOV_VENV := $(CURDIR)/.venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.tools-stamp

# The venv first on PATH: cargo-lambda finds zig through `python3 -m ziglang`, and sam runs
# cargo lambda. checkov is called by its full path (its venv would shadow sam's dependencies).
export PATH := $(VENV)/bin:$(PATH)
# Integration tests start moto's SQS server from this path themselves.
export MOTO_SERVER := $(VENV)/bin/moto_server
# The emulator's AWS CLI test runs this one (the pinned CLI, not whatever is on the machine).
export AWS_CLI := $(VENV)/bin/aws
# No AWS network here (and none wanted from a linter): no telemetry calls.
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv demo plan-demo marketplace-demo test fmt-check clippy doc cargo-test deny build package sam-build validate \
        deploy bench chaos fuzz clean distclean pin-tools

help: ## List the targets
	@echo "opportunity-disassociator - make targets:"
	@grep -E '^[a-z][a-zA-Z0-9_-]*:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'
	@echo "Variables: ENV=$(ENV) (dev|prod, for deploy), REGION=$(REGION)"

# ---------------------------------------------------------------- tools
$(VENV_STAMP): tools/requirements.txt tools/constraints.txt tools/venv.sh
	@VENV_DIR=$(VENV) tools/venv.sh main

$(CHECKOV_STAMP): tools/requirements-checkov.txt tools/constraints-checkov.txt tools/venv.sh
	@VENV_DIR=$(CHECKOV_VENV) tools/venv.sh checkov

venv: $(VENV_STAMP) $(CHECKOV_STAMP) ## Install the pinned tools (.venv/, .venv-checkov/)

# ---------------------------------------------------------------- run locally
demo: $(VENV_STAMP) ## Run the local demo (tools/demo.sh: emulator + both functions, no AWS)
	bash tools/demo.sh

plan-demo: $(VENV_STAMP) ## Plan and send examples/bulk-export.csv, then the worker carries it out (tools/plan-demo.sh, no AWS)
	bash tools/plan-demo.sh

marketplace-demo: $(VENV_STAMP) ## Plan the seed's legacy-Solutions move, send it, the worker carries it out (tools/marketplace-demo.sh, no AWS)
	bash tools/marketplace-demo.sh

# ---------------------------------------------------------------- test (what CI runs)
test: fmt-check clippy doc cargo-test deny validate ## Everything CI checks: fmt, clippy, docs, tests, deny, validate

fmt-check: ## cargo fmt --check
	cargo fmt --all -- --check

clippy: ## cargo clippy, warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

doc: ## cargo doc, broken or private links as errors (the crates' docs are read with cargo doc --open)
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

cargo-test: $(VENV_STAMP) ## cargo test (unit, end-to-end with moto, property tests)
	@echo "MOTO_SERVER=$(MOTO_SERVER)"
	cargo test --workspace

deny: ## Supply-chain checks: cargo deny (licenses, bans, sources; advisories when reachable)
	bash tools/deny.sh

# ---------------------------------------------------------------- build
build: ## cargo build --release (host architecture)
	cargo build --release

package: $(VENV_STAMP) ## Build both functions' arm64 Lambda zips with cargo lambda and print their sizes
	@rustup target list --installed | grep -x '$(ARM64_TARGET)' >/dev/null \
	  || { echo "==> rustup target add $(ARM64_TARGET)"; rustup target add $(ARM64_TARGET); }
	cargo lambda build --release --arm64 --output-format zip $(addprefix --bin ,$(BINS)) --lambda-dir $(LAMBDA_DIR)
	@for bin in $(BINS); do \
	  zip="$(LAMBDA_DIR)/$$bin/bootstrap.zip"; bytes=$$(stat -c %s "$$zip"); \
	  echo "package: $$zip: $$bytes bytes ($$(awk -v b=$$bytes 'BEGIN {printf "%.2f", b / 1048576}') MiB)"; \
	done

sam-build: $(VENV_STAMP) ## sam build (rust-cargolambda) into .aws-sam/
	@rustup target list --installed | grep -x '$(ARM64_TARGET)' >/dev/null \
	  || { echo "==> rustup target add $(ARM64_TARGET)"; rustup target add $(ARM64_TARGET); }
	sam build --template-file template.yaml

# ---------------------------------------------------------------- template
# template.yaml as deployed by default, and a copy with every optional part switched on
# (tools/template-all-options.sh), so the conditional resources are linted and scanned too.
ALL_OPTIONS := $(TARGET_DIR)/template/template.all-options.yaml

validate: $(VENV_STAMP) $(CHECKOV_STAMP) ## sam validate --lint, cfn-lint, checkov on template.yaml; sam local's environment passes init
	@tools/template-all-options.sh $(ALL_OPTIONS)
	sam validate --lint --template-file template.yaml --region $(REGION)
	sam validate --lint --template-file $(ALL_OPTIONS) --region $(REGION)
	cfn-lint template.yaml $(ALL_OPTIONS)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --file template.yaml --file $(ALL_OPTIONS)
	@# The binaries `cargo test` built (a build of the one package alone may resolve other features).
	@for bin in $(BINS); do test -x "$(TARGET_DIR)/debug/$$bin" || cargo build --quiet --bin "$$bin"; done
	$(VENV)/bin/python tools/check-sam-local.py $(addprefix $(TARGET_DIR)/debug/,$(BINS))

# ---------------------------------------------------------------- deploy
deploy: sam-build ## sam build + sam deploy --config-env ENV (ENV=dev|prod, default dev; needs AWS credentials)
	sam deploy --config-env $(ENV)

# ---------------------------------------------------------------- measurements
bench: $(VENV_STAMP) ## Benchmarks (bench/run.sh; figures in bench/README.md)
	bash bench/run.sh

chaos: $(VENV_STAMP) ## The long failure-injection run (tools/chaos.sh)
	bash tools/chaos.sh

fuzz: ## Fuzz the worker's event decoding (tools/fuzz.sh, nightly cargo-fuzz)
	bash tools/fuzz.sh

# ---------------------------------------------------------------- housekeeping
clean: ## Remove build outputs (the target folder, .aws-sam/); keeps the tool venvs
	cargo clean
	rm -rf .aws-sam

distclean: clean ## clean, and remove the tool venvs too
	rm -rf .venv .venv-checkov

pin-tools: ## Maintainers: after changing a pin in tools/requirements*.txt, regenerate the full pinned sets
	rm -rf /tmp/pin-main /tmp/pin-checkov
	python3 -m venv /tmp/pin-main && /tmp/pin-main/bin/pip install -q -r tools/requirements.txt
	python3 -m venv /tmp/pin-checkov && /tmp/pin-checkov/bin/pip install -q -r tools/requirements-checkov.txt
	{ sed -n '1,2p' tools/constraints.txt; /tmp/pin-main/bin/pip freeze --all | grep -viE '^(pip|setuptools)=='; } > tools/constraints.txt.new
	{ sed -n '1,2p' tools/constraints-checkov.txt; /tmp/pin-checkov/bin/pip freeze --all | grep -viE '^(pip|setuptools)=='; } > tools/constraints-checkov.txt.new
	mv tools/constraints.txt.new tools/constraints.txt
	mv tools/constraints-checkov.txt.new tools/constraints-checkov.txt
	rm -rf /tmp/pin-main /tmp/pin-checkov
