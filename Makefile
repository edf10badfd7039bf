# sigdeploy — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch first, pinned to the CPU wheel this project is developed with: an unpinned torch
# (or a range with none installed) would pull a multi-GB CUDA build. Elsewhere this pin
# takes the normal wheel for the platform.
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed
TARGET ?= local
OUTPUT ?= pipeline.json
RUN_ARGS ?=
PYTEST_ARGS ?=
REGISTRY ?=
KIND_CLUSTER ?= sigdeploy
KIND_ENV ?= $(HOME)/.cache/sigdeploy/kind-$(KIND_CLUSTER).env

.PHONY: help venv run compile test test-fast lint format bench bench-gpu serve clean images docker-setup test-containers bench-images kind-up kind-down run-kind

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project (reused while pyproject.toml is unchanged)

compile: $(STAMP) ## compile the pipeline: make compile TARGET=vertex OUTPUT=pipeline-vertex.json
	$(PY) compile.py --target $(TARGET) --output $(OUTPUT)

run: $(STAMP) ## set up, compile, and run the pipeline end to end on the KFP local runner
	$(PY) compile.py --target local --output pipeline.json
	$(VENV)/bin/sigdeploy run --pipeline pipeline.json $(RUN_ARGS)

test: $(STAMP) ## set up and run the test suite
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP) ## the tests without the slow and end-to-end ones
	$(VENV)/bin/pytest -q -m "not slow and not e2e" $(PYTEST_ARGS)

# Every check runs even when one fails, so one pass shows everything to fix.
LINT_CHECKS := "ruff check ." "ruff format --check ." "lint-imports --no-cache" "mypy"
lint: $(STAMP) ## ruff lint + format check, import contracts, mypy on every package
	@failed=""; for check in $(LINT_CHECKS); do echo "== $$check"; \
		$(VENV)/bin/$$check || failed="$$failed, $$check"; done; \
	test -z "$$failed" || { echo "lint failed: $${failed#, }"; exit 1; }

format: $(STAMP) ## apply ruff formatting and fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## run the CPU benchmarks (minutes) and print their comparison lines
	@for b in local_run gate_null regression_gate_null gate_lifetime stats_scale serve_load serve_size train_speed train_defaults model_quality; do \
		echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done

bench-images: $(STAMP) images ## image sizes and serving start-to-healthy beside a torch serving image
	$(PY) benchmarks/image_size.py

bench-gpu: $(STAMP) ## GPU training throughput (needs CUDA; never in CI)
	$(PY) benchmarks/train_gpu.py

serve: $(STAMP) ## serve the champion that `make run` registered, on port 8080
	$(VENV)/bin/sigdeploy serve --registry registry --port 8080

images: ## build both images here (engine + local base set up); REGISTRY=REGION-docker.pkg.dev/PROJECT/sigdeploy pushes
	@if [ -n "$(REGISTRY)" ]; then REGISTRY="$(REGISTRY)" scripts/build-images.sh; \
	else TORCH_PIN="$(TORCH_PIN)" PYTHON="$(PYTHON)" scripts/build-images.sh --local; fi

docker-setup: ## install + start a Docker engine if missing and import the local Python base
	scripts/docker-setup.sh

test-containers: $(STAMP) images ## build the images, then run the container tests (tests/containers)
	$(VENV)/bin/pytest -q -m containers tests/containers $(PYTEST_ARGS)

kind-up: ## kind cluster + pinned standalone KFP + our images; KFP UI/API on localhost:8080
	CLUSTER="$(KIND_CLUSTER)" IMAGES_ENV="$(KIND_ENV)" scripts/kind-up.sh

kind-down: ## stop the port-forward and delete the kind cluster
	CLUSTER="$(KIND_CLUSTER)" scripts/kind-down.sh

run-kind: $(STAMP) ## compile for kind and submit to the KFP of `make kind-up` (RUN_ARGS=--wait)
	set -a && . "$(KIND_ENV)" && set +a && \
	$(PY) compile.py --target kind --output pipeline-kind.yaml && \
	$(VENV)/bin/sigdeploy submit kfp --pipeline pipeline-kind.yaml \
		--param serving_image="$$SIGDEPLOY_SERVING_IMAGE" $(RUN_ARGS)

clean: ## remove runs, the local registry and compiled pipelines (keeps .venv)
	rm -rf runs registry pipeline.json pipeline-*.json pipeline-*.yaml
