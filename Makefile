# The two commands a newcomer needs: `make demo` and `make test`. Everything they need is
# installed into the project (.venv for the AWS emulator); nothing global.

CARGO ?= cargo
VENV  := .venv
PY    := $(VENV)/bin/python
CRD   := config/crd/elasticache-export.io_snapshotexports.yaml
SCHEDULE_CRD := config/crd/elasticache-export.io_snapshotexportschedules.yaml

.PHONY: demo test unit e2e emulator-test lint fmt crd build venv clean tools chart-test bench

## demo: run the operator against the local AWS emulator and Kubernetes API and watch it work
demo: venv
	$(CARGO) build --quiet --bin elasticache-export-operator --example demo
	$(CARGO) run --quiet --example demo

## test: install what the tests need, then lint, packaging, unit, emulator and end-to-end tests
test: venv tools lint chart-test emulator-test
	$(CARGO) test --workspace --no-fail-fast

## bench: the operator's AWS calls, API writes, memory and CPU for N = 100, 1,000 and 10,000
## exports (BENCH_N="100 1000" to choose; BENCH_IDLE_SECONDS for the idle window), then two nights
## of 1,000 schedules (BENCH_SCHEDULES, 0 to skip; BENCH_SCHEDULES_CREATE, BENCH_SCHEDULE_DAY_SECONDS),
## then 500 exports stalled on one broken bucket (BENCH_STALLED, 0 to skip); see docs/performance.md
bench: venv
	$(CARGO) build --release --quiet --bin elasticache-export-operator
	$(CARGO) build --release --quiet --example bench
	ECX_OPERATOR_BIN=$(CURDIR)/target/release/elasticache-export-operator ECX_OPERATOR_LOG=info $(CARGO) run --release --quiet --example bench

## unit: the Rust unit and table tests only (no emulator needed)
unit:
	$(CARGO) test --workspace --lib --bins

## e2e: the end-to-end suite (set E2E_KUBECONFIG to run it against a real cluster)
e2e: venv
	$(CARGO) test --test e2e

emulator-test: venv
	$(PY) -m pytest -q -p no:cacheprovider testbed/aws-emulator/tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

fmt:
	$(CARGO) fmt --all

## crd: regenerate the committed CRD from the Rust types
crd:
	$(CARGO) run --quiet -- crd > $(CRD)
	$(CARGO) run --quiet -- crd --kind schedule > $(SCHEDULE_CRD)
	cp $(CRD) $(SCHEDULE_CRD) charts/elasticache-export-operator/crds/

build:
	$(CARGO) build --release --bin elasticache-export-operator

## chart-test: helm lint/template, schema validation of the chart and config/, samples, RBAC parity
chart-test: venv tools
	hack/chart-test.sh

## tools: pinned helm and kubectl in .tools/bin, kubernetes-validate in .venv (project-local)
tools: .tools/bin/helm $(VENV)/.tools-installed

.tools/bin/helm: hack/install-tools.sh
	hack/install-tools.sh

$(VENV)/.tools-installed: hack/requirements-tools.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r hack/requirements-tools.txt
	touch $@

venv: $(VENV)/.installed

$(VENV)/.installed: testbed/aws-emulator/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r testbed/aws-emulator/requirements.txt
	touch $@

clean:
	rm -rf $(VENV) target .tools
