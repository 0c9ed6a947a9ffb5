# Switchyard: the two commands are `make dev` and `make test` (see README.md).

CARGO ?= cargo
VENV  := .venv
NODE_SDKS := e2e/sdk/node/node_modules/.installed
CONSOLE_NODE := e2e/console/node_modules/.installed
PY    := python3

.PHONY: dev test build release lint fmt bench fuzz fuzz-coverage upgrade-test clean-data

## make dev: build, then run mock provider + control plane + dataplane in the foreground.
dev:
	bash deploy/dev.sh

## make test: every test (unit, end-to-end over real processes, SDK conformance).
test: $(VENV)/.installed $(NODE_SDKS) $(CONSOLE_NODE)
	$(CARGO) build --workspace --bins
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

# The official TypeScript SDKs for the conformance test, pinned in e2e/sdk/node/package-lock.json
# (no install scripts run).
$(NODE_SDKS): e2e/sdk/node/package-lock.json
	cd e2e/sdk/node && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# playwright-core for the console's browser test (it drives Debian's chromium; no browser
# download), pinned in e2e/console/package-lock.json.
$(CONSOLE_NODE): e2e/console/package-lock.json
	cd e2e/console && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# The official SDKs for the conformance test, pinned in e2e/sdk/requirements.txt.
$(VENV)/.installed: e2e/sdk/requirements.txt
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r e2e/sdk/requirements.txt
	touch $@

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --workspace --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## make fuzz: the fuzz targets (dataplane/tests/fuzz.rs), FUZZ_CASES random inputs each, release.
FUZZ_CASES ?= 1000000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release -p switchyard-dataplane --test fuzz -- --test-threads 1 --nocapture

## make fuzz-coverage: the same targets under libFuzzer, coverage-guided (cargo-fuzz, stable
## toolchain: no sanitizer), FUZZ_SECONDS each from fuzz/seeds; the corpus grows in fuzz/corpus,
## crashes land in fuzz/artifacts. Its own build in fuzz/target.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := request sse_relay response snapshot provider_request provider_response dialect_request dialect_answer
fuzz-coverage:
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && \
		$(CARGO) fuzz run -s none $$t corpus/$$t seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 || exit 1; \
	done

## make upgrade-test: a graceful dataplane upgrade under 1,000 requests/s on release builds
## (make test runs the same test on debug builds at 250/s).
upgrade-test:
	$(CARGO) build --release --workspace --bins
	$(CARGO) nextest run --release -p switchyard-e2e --test chaos upgrade --no-capture

## make bench: release build, then requests/s through the gateway against the mock directly.
bench:
	bash bench/run.sh

clean-data:
	rm -rf .data
