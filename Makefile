# The two commands of the README: `make dev` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test warmup lint typecheck crds e2e e2e-local e2e-kind values-docs kube image image-if-engine release-dry-run clean mutation

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

## test: set everything up and run lint, type checks and the test suite (`make e2e`: end to end)
test: $(STAMP) lint typecheck kube image-if-engine warmup
	$(BIN)/pytest -m "not e2e"

## warmup: compile the engine's numba kernels into numba's cache (as the image build does), so
## that no test pays the compilation inside its timeout on a fresh clone; cached: about 2 s
warmup: $(STAMP)
	$(BIN)/python -m recluster.engine.warmup

## image: build the image with podman (or Docker where it runs): localhost/recluster:dev
## (tools/image/build.py; where no registry answers, its base comes from Debian's packages)
image:
	$(PYTHON) tools/image/build.py

## release-dry-run: all a version tag publishes but the push (tools/release.py): the chart
## packaged at the version into dist/, and the image's version checked
release-dry-run: $(STAMP) image-if-engine
	$(BIN)/python tools/release.py --out dist --image localhost/recluster:dev

# The image tests (tests/image) need the image where an engine exists, and skip where none does.
image-if-engine:
	@if command -v podman >/dev/null 2>&1 || docker info >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory image; \
	else \
	  echo "no podman or Docker: the image tests will be skipped"; \
	fi

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

## e2e: every end-to-end test this machine can run: on the local control plane with pods in
## podman containers (needs podman and `make image`), and on kind (needs Docker and kind);
## each skips, saying why, where its engine is missing
e2e: $(STAMP) kube
	$(BIN)/pytest -m e2e -rs tests/e2e

## e2e-local: end to end on this machine: helm-installed chart, every pod a podman container
e2e-local: $(STAMP) kube
	$(BIN)/pytest -m e2e -rs tests/e2e/test_local.py

## e2e-kind: end to end on a kind cluster (needs Docker and kind)
e2e-kind: $(STAMP)
	$(BIN)/pytest -m e2e -rs tests/e2e/test_kind.py

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
	set -f && cd $(MUTATION) && $(CURDIR)/$(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) $(MUTANTS)
	$(BIN)/python tools/mutation_report.py

## values-docs: regenerate the values table of docs/install.md from values.schema.json
values-docs: $(STAMP)
	$(BIN)/python tools/values_table.py --update docs/install.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/bin
