# The two fresh-machine commands:
#   make up     a local stack: Label Studio + both backends, wired, with sample images
#   make test   everything CI checks: lint, import layers, types and the whole test suite
#               (with the two images built and run as containers, where buildah is installed)
#   make images          the operator and backend images (scripts/images.sh: Docker, podman or buildah)
#   make container-test  build them with buildah, start them as containers and test them
VENV := .venvs/backend
BIN := $(VENV)/bin
export LABELSTACK_LS_VENV := $(CURDIR)/.venvs/label-studio

.PHONY: up down status test lint typecheck pytest bootstrap manifests images test-images container-test

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

pytest: bootstrap test-images
	scripts/bootstrap.sh system helm
	$(BIN)/pytest $(PYTEST_ARGS)

# Without a running Docker engine, buildah and debootstrap come from apt-get first.
images:
	@docker info >/dev/null 2>&1 || scripts/bootstrap.sh containers
	@scripts/images.sh $(IMAGES)

# The container tests run the images with buildah, so they are built with buildah here.
test-images:
	scripts/bootstrap.sh containers
	LABELSTACK_BUILDER=buildah scripts/images.sh

container-test: bootstrap test-images
	$(BIN)/pytest tests/container

test: lint typecheck pytest

# Regenerate the CRD (manifests/ and the chart), the chart's values schema, manifests/operator.yaml
# and manifests/examples/ from their sources; the tests fail while any of them is out of date.
manifests: bootstrap
	scripts/bootstrap.sh helm
	PYTHONPATH=$(CURDIR)/common:$(CURDIR)/operator:$(CURDIR) $(BIN)/python -m scripts.render_manifests
