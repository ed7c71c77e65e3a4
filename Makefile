# The two commands of the README: `make dev` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint typecheck crds e2e values-docs kube clean mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## kube: build (once) the local control plane's binaries, and fetch kubectl and helm
kube: $(STAMP)
	$(BIN)/recluster localkube build
	$(BIN)/python tools/get_helm.py --kubectl

## dev: set everything up and run the whole system on this machine (Ctrl-C stops it)
dev: $(STAMP) kube
	$(BIN)/recluster validate --quiet examples/
	$(BIN)/recluster dev

## test: set everything up and run lint, type checks and the test suite
test: $(STAMP) lint typecheck kube
	$(BIN)/pytest

LINTED := operator tests tools $(wildcard benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

## crds: regenerate crds/ and charts/recluster/crds/ from the models
crds: $(STAMP)
	$(BIN)/recluster crds

## e2e: end-to-end tests on a kind cluster (needs Docker and kind)
e2e: $(STAMP)
	$(BIN)/pytest -m e2e tests/e2e

## mutation: mutation testing of recluster/core and recluster/api against tests/core and
## tests/api (docs/testing.md); MUTANTS="name ..." reruns some, MUTATION_CHILDREN sets the workers
MUTATION ?= build/mutation
MUTATION_CHILDREN ?= 1
mutation: $(STAMP)
	mkdir -p $(MUTATION)/src $(MUTATION)/charts/recluster
	ln -sfn $(CURDIR)/operator/recluster $(MUTATION)/src/recluster
	mkdir -p $(MUTATION)/tools $(MUTATION)/mutants/tools
	for p in tests crds examples pyproject.toml tools/get_helm.py tools/values_table.py; do ln -sfn $(CURDIR)/$$p $(MUTATION)/$$p; done
	ln -sfn $(CURDIR)/charts/recluster/crds $(MUTATION)/charts/recluster/crds
	cd $(MUTATION) && $(CURDIR)/$(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) $(MUTANTS)
	$(BIN)/python tools/mutation_report.py

## values-docs: regenerate the values table of docs/install.md from values.schema.json
values-docs: $(STAMP)
	$(BIN)/python tools/values_table.py --update docs/install.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/bin
