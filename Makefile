# Mapokezi: `make run` starts the local stack, `make test` runs every check.
# Both bootstrap .venv from requirements.lock on first use.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CFN_TEMPLATES := template.yaml $(wildcard infra/*.yaml)

# Deployment settings (override on the command line or in the environment).
STACK_NAME ?= mapokezi
AWS_REGION ?= af-south-1
IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
ECR_REPO ?= mapokezi-media-node
MEDIA_NODE_IMAGE_URI ?=
DEPLOY_PARAMS ?=
# The Lambda runtime's Python: it compiles functions/ to .pyc before deploying (see deploy).
LAMBDA_PYTHON ?= python3.12
# Test files run in parallel processes: most tests wait on real-time audio, not the CPU.
PYTEST_WORKERS ?= 4
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

.DEFAULT_GOAL := help
.PHONY: help venv test lint typecheck fmt pytest cfn-lint run call bench image deploy lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv from requirements.lock

test: $(STAMP) ## Format check, lint, cfn-lint, mypy and the whole pytest suite
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint $(CFN_TEMPLATES)
	$(VENV)/bin/mypy
	$(PYTEST) $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (format check and lint) and cfn-lint only
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cfn-lint $(CFN_TEMPLATES)

typecheck: $(STAMP) ## mypy, strict, on the media node and the shared core (pyproject.toml)
	$(VENV)/bin/mypy

fmt: $(STAMP) ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

pytest: $(STAMP) ## Only the pytest suite (PYTEST_ARGS=... to select, PYTEST_WORKERS=0 for one process)
	$(PYTEST) $(PYTEST_ARGS)

cfn-lint: $(STAMP) ## Only cfn-lint on every template
	$(VENV)/bin/cfn-lint $(CFN_TEMPLATES)

run: $(STAMP) ## Start the local stack in the foreground (Ctrl-C stops it)
	$(PY) -m local

call: $(STAMP) ## Place an emulated call against the local stack (ARGS="--help" for options)
	$(PY) -m local.emulator $(ARGS)

bench: $(STAMP) ## Run the benchmarks; prints a table and writes bench/results/
	$(PY) -m bench $(ARGS)

image: ## Build and push the media-node image to ECR (needs docker and AWS credentials)
	./infra/build-image.sh "$(AWS_REGION)" "$(ECR_REPO)" "$(IMAGE_TAG)"

# Without MEDIA_NODE_IMAGE_URI only the serverless half is deployed (calls fall back to <Dial>).
PARAM_OVERRIDES = $(strip $(if $(MEDIA_NODE_IMAGE_URI),MediaNodeImageUri=$(MEDIA_NODE_IMAGE_URI)) $(DEPLOY_PARAMS))

deploy: $(STAMP) ## sam deploy (MEDIA_NODE_IMAGE_URI=... from `make image`, DEPLOY_PARAMS="K=V ...")
	@command -v sam >/dev/null || { echo "sam CLI not found: pip install aws-sam-cli (see README)"; exit 1; }
	rm -rf .aws-sam  # a stale build template would silently win over template.yaml
	@# Lambda cannot write .pyc files (the task root is read-only), so without these every cold
	@# start compiles the sources again. Checked-hash: a stale .pyc is recompiled, never run.
	@if command -v $(LAMBDA_PYTHON) >/dev/null; then \
	  find functions -name __pycache__ -prune -exec rm -rf {} +; \
	  $(LAMBDA_PYTHON) -m compileall -q --invalidation-mode checked-hash functions; \
	else echo "warning: $(LAMBDA_PYTHON) not found; deploying without .pyc (slower cold starts)"; fi
	sam deploy --template-file template.yaml --stack-name $(STACK_NAME) --region $(AWS_REGION) \
	  --resolve-s3 --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
	  --no-fail-on-empty-changeset $(if $(PARAM_OVERRIDES),--parameter-overrides $(PARAM_OVERRIDES))

lock: ## Re-resolve the pinned dependency tree from pyproject.toml
	rm -rf /tmp/mapokezi-lock && $(PYTHON) -m venv /tmp/mapokezi-lock
	/tmp/mapokezi-lock/bin/pip install --quiet ".[dev]"
	{ echo "# The whole dependency tree, pinned (Python 3.11 and 3.12). Regenerate with \`make lock\`."; \
	  /tmp/mapokezi-lock/bin/pip freeze --exclude mapokezi; } > requirements.lock

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .aws-sam
