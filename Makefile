# Two commands matter: `make run` and `make test` (see README.md).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VENDOR := tessera/web/static/vendor
# The console's front-end packages (versions pinned in package-lock.json), served locally.
VENDOR_FILES := $(VENDOR)/htmx.min.js $(VENDOR)/chart.umd.min.js \
	$(VENDOR)/swagger-ui-bundle.js $(VENDOR)/swagger-ui.css
# Browser tests drive Debian's Chromium; installed with apt-get when missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install lint typecheck pytest bench clean browser wheel test-spark-floor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VENDOR_FILES): package.json package-lock.json
	# --ignore-scripts: no package needs one, and swagger-ui-dist's dependency @scarf/scarf
	# would report the install to a third party.
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js \
		node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/
	touch $(VENDOR_FILES)

install: $(STAMP) $(VENDOR_FILES)

browser:
	test -x $(CHROMIUM) || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null)

## make run: install, load the demo company on first run, serve API + console on :8000
run: install
	$(BIN)/python -m compileall -q -j 0 tessera >/dev/null
	$(BIN)/tessera demo --if-empty
	$(BIN)/tessera serve

## make test: what CI runs — lint, types, every test layer
test: lint typecheck pytest

# lint-imports checks the layering contract in pyproject.toml (docs/layout.md).
lint: install
	$(BIN)/ruff check tessera tests benchmarks
	$(BIN)/ruff format --check tessera tests benchmarks
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

# Three workers, a test file each at a time (files share their module's server): most tests
# wait on a server, a browser or a subprocess, so two cores run three files well. Files start
# in collection order, the longest first (tests/conftest.py `SLOWEST_FIRST`). The 15
# slowest tests are listed at the end: where the 15-minute budget goes.
# compileall first: with PYTHONDONTWRITEBYTECODE set (as on CI's machines) every server and
# CLI a test starts compiled Tessera's sources again, ~0.6 s of CPU per process.
pytest: install browser
	$(BIN)/python -m compileall -q -j 0 tessera tests benchmarks >/dev/null
	$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder -rfE --durations=15

## make test-spark-floor: the Spark tests on the oldest pyspark we declare (3.5), in a venv of
## its own (.venv-spark35, ~3 min to install); not part of `make test` (tests/spark runs there on
## the newest pyspark). Clusters often run 3.5 (Databricks 14-15 LTS, EMR 7).
SPARK_FLOOR := .venv-spark35
test-spark-floor:
	test -x $(SPARK_FLOOR)/bin/python || $(PYTHON) -m venv $(SPARK_FLOOR)
	$(SPARK_FLOOR)/bin/python -m pip install --quiet -e '.[dev]' 'pyspark>=3.5,<3.6'
	PATH="$(CURDIR)/$(SPARK_FLOOR)/bin:$$PATH" $(SPARK_FLOOR)/bin/pytest tests/spark -q -p no:cacheprovider

## make wheel: the package, console files inside (docs/deploy.md): dist/tessera-*.whl
wheel: install
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -w dist .

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) $(SPARK_FLOOR) build *.egg-info node_modules $(VENDOR)
