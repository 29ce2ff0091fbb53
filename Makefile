# The two fresh-machine commands:
#   make up     a local stack: Label Studio + both backends, wired, with sample images
#   make test   everything CI checks: lint, import layers, types and the whole test suite
VENV := .venvs/backend
BIN := $(VENV)/bin
export LABELSTACK_LS_VENV := $(CURDIR)/.venvs/label-studio

.PHONY: up down status test lint typecheck pytest bootstrap manifests

bootstrap:
	@scripts/bootstrap.sh backend label-studio

up: bootstrap
	@./labelstack up $(ARGS)

# The same as ./labelstack down and ./labelstack status, which the README and the banner show.
down:
	@./labelstack down

status:
	@./labelstack status

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: bootstrap
	$(BIN)/mypy

pytest: bootstrap
	scripts/bootstrap.sh system helm
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Regenerate the CRD (manifests/ and the chart), the chart's values schema, manifests/operator.yaml
# and manifests/examples/ from their sources; the tests fail while any of them is out of date.
manifests: bootstrap
	scripts/bootstrap.sh helm
	PYTHONPATH=$(CURDIR)/common:$(CURDIR)/operator:$(CURDIR) $(BIN)/python -m scripts.render_manifests
