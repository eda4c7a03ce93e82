# jobyard: `make up` runs the embedded default, `make test` runs the whole suite.
# The install and daemon steps live in scripts/ so that .ci/run takes exactly the same ones.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv image images docker up test lint bench soak clean

help:
	@echo "make up     install what is missing (redis, docker, busybox), then run 'jobyard up'"
	@echo "make test   install what is missing (also chromium and promtool), then run the whole test suite"
	@echo "make lint   ruff and mypy"
	@echo "make venv   create .venv and install jobyard with its dev extras"
	@echo "make image  build the test image jobyard/busybox:latest"
	@echo "make images build jobyard/api and jobyard/worker (and their base) from local parts"
	@echo "make bench  run the benchmarks"
	@echo "make soak   chaos soak: 2,000 Docker jobs while agents, api, scheduler and Redis are killed"
	@echo "make clean  remove caches and build output (keeps .venv and .jobyard)"

venv: $(STAMP)

# Reinstalled whenever the package metadata is newer than the last install.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

images: venv
	bash scripts/ensure-deps.sh docker debootstrap
	bash scripts/build-images.sh

image:
	@test -f scripts/build-image.sh || { echo "scripts/build-image.sh is missing" >&2; exit 1; }
	bash scripts/build-image.sh

# A Docker daemon and the test image. Without a daemon this only warns (jobs then run as
# processes and Docker tests skip), unless JOBYARD_REQUIRE_DOCKER=1 makes it an error.
docker:
	@if bash scripts/ensure-dockerd.sh; then \
		$(MAKE) --no-print-directory image; \
	elif [ "$${JOBYARD_REQUIRE_DOCKER:-0}" = 1 ]; then \
		echo "error: no Docker daemon and JOBYARD_REQUIRE_DOCKER=1" >&2; exit 1; \
	else \
		echo "warning: no Docker daemon: jobs run as plain processes, Docker tests skip" >&2; \
	fi

up: venv
	bash scripts/ensure-deps.sh redis docker busybox
	@$(MAKE) --no-print-directory docker
	$(BIN)/jobyard up

test: venv
	bash scripts/ensure-deps.sh redis docker busybox chromium promtool debootstrap compose
	@$(MAKE) --no-print-directory docker
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The peers (RQ, Celery) come with the bench extra; wrk loads the API; Docker runs the
# container benchmarks beside `docker run`.
bench: venv
	bash scripts/ensure-deps.sh redis docker busybox wrk
	@$(MAKE) --no-print-directory docker
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench

# Figures printed as a table and written to bench/results/soak.json; exit status 1 when an
# invariant did not hold. tests/e2e/test_soak.py runs the same soak smaller in `make test`.
soak: venv
	bash scripts/ensure-deps.sh redis docker busybox
	@$(MAKE) --no-print-directory docker
	$(BIN)/python -m tests.e2e.soak

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
