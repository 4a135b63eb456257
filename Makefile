# faceauth developer commands. Every target installs what it needs and is quick when nothing changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
LFW ?= $(SHARED)/datasets/lfw
WIDER ?= $(SHARED)/datasets/wider_face
SPOOF ?= $(SHARED)/datasets/antispoof_print
# Converted SavedModels (TensorFlow Serving layout); downloads are cached in ~/.cache/faceauth.
export FACEAUTH_MODEL_DIR ?= $(CURDIR)/var/models
export TF_CPP_MIN_LOG_LEVEL ?= 2
PIP := $(BIN)/pip --disable-pip-version-check -q
INSTALLED := $(VENV)/.installed
PROTOS := $(wildcard proto/faceauth/v1/*.proto)
STUBS := libs/faceauth/v1/.generated
MODELS := $(FACEAUTH_MODEL_DIR)/.built

.PHONY: help setup proto models run test helm lint eval bench loadtest clean

help: ## List the targets.
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(INSTALLED) ## Create .venv and install the locked, hash-checked dependencies.

$(INSTALLED): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements.lock 2> >(grep -v "is ignored: it is neither" >&2)
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

proto: $(STUBS) ## Generate Python gRPC stubs from proto/.

$(STUBS): $(INSTALLED) $(PROTOS)
	mkdir -p libs/faceauth/v1
	$(if $(PROTOS),$(BIN)/python -m grpc_tools.protoc -I proto --python_out=libs --pyi_out=libs \
	  --grpc_python_out=libs $(PROTOS))
	touch libs/faceauth/v1/__init__.py $@

models: $(MODELS) ## Fetch the pinned weights (sha256-checked) and convert them to SavedModels.

$(MODELS): $(INSTALLED) models.lock.json $(wildcard libs/facemodels/*.py)
	$(BIN)/python -m facemodels.build --lock models.lock.json --out $(FACEAUTH_MODEL_DIR)
	touch $@

run: $(INSTALLED) $(STUBS) $(MODELS) ## The whole stack on localhost (auth :8000); Ctrl-C stops it.
	scripts/run-stack.sh

test: $(INSTALLED) $(STUBS) $(MODELS) ## Run the whole test suite (starts PostgreSQL if needed).
	scripts/ensure-postgres.sh
	scripts/ensure-prometheus.sh
	scripts/ensure-redis.sh
	scripts/ensure-chromium.sh
	$(BIN)/pytest -q -p no:cacheprovider --shared=$(abspath $(SHARED)); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

helm: $(INSTALLED) $(STUBS) $(MODELS) ## Lint, render, validate and test the Helm chart (also part of make test).
	scripts/ensure-prometheus.sh
	scripts/ensure-redis.sh
	$(BIN)/pytest -q -p no:cacheprovider --shared=$(abspath $(SHARED)) tests/test_helm_chart.py \
	  tests/test_helm_alerts.py tests/test_helm_live.py

lint: $(INSTALLED) $(STUBS) ## ruff, mypy, buf (protos) and hadolint (Dockerfiles).
	$(BIN)/ruff check .
	$(BIN)/mypy libs services tests deploy/helm/scripts
	$(BIN)/buf lint proto
	$(BIN)/buf format --diff --exit-code proto
	$(BIN)/hadolint $(wildcard services/*/Dockerfile)

eval: $(INSTALLED) $(MODELS) ## Accuracy on LFW and WIDER FACE, liveness APCER/BPCER (LFW=, WIDER=, SPOOF= to override).
	$(BIN)/python -m facemodels.evaluation --lfw $(LFW) --wider $(WIDER)
	$(BIN)/python -m facemodels.evaluation.liveness --dataset $(SPOOF)

bench: $(INSTALLED) $(STUBS) $(MODELS) ## Speed benchmarks (models, gRPC services, face-login through the stack); prints figures.
	$(BIN)/python -m facemodels.benchmark --lfw $(LFW)
	$(BIN)/python -m faceauth.grpc.bench --lfw $(LFW)
	$(BIN)/python -m faceauth_auth.bench --lfw $(LFW)

loadtest: $(INSTALLED) $(STUBS) $(MODELS) ## Drive the stack past capacity (FACEAUTH_URL + FACEAUTH_API_KEY, or a stack of its own): it must shed load with 429/503, never time out, and recover.
	$(BIN)/python -m faceauth_auth.loadtest --lfw $(LFW)

clean: ## Remove the venv, generated stubs and converted models (download cache is kept).
	rm -rf $(VENV) libs/faceauth/v1 var
