# recsys — the two commands of the README, and their helpers.
#   make reports   run the notebooks as reports on the embedded default (synthetic data)
#   make test      notebooks clean + library in sync + README in sync + ruff + nbdev_test + pytest (the full gate)
#   make check     the developer's loop: the same checks, but only the fast pytest subset (no test marked reports,
#                  process, spark or browser; see tests/conftest.py), in under 5 minutes on two cores
# Both create (or reuse) .venv and install the pinned set from constraints.txt themselves.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.recsys-installed
EXTRAS ?= dev,spark
JOBS   ?=
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test check pytest-fast check-clean check-sync check-readme lint nbtest pytest reports bench readme export clean-venv

install: $(STAMP)

$(STAMP): constraints.txt settings.ini setup.py pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "recsys needs Python 3.11+, found " + sys.version' 
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt pip setuptools wheel packaging
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt --no-build-isolation -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip check
	@touch $@

# --- the test command -------------------------------------------------------
test: install check-clean check-sync check-readme lint nbtest pytest

check-clean: install
	@before=$$(cat nbs/*.ipynb | md5sum); $(BIN)/nbdev_clean; after=$$(cat nbs/*.ipynb | md5sum); \
	if [ "$$before" != "$$after" ]; then echo "FAIL: notebooks were not clean; nbdev_clean has cleaned them now: review and commit"; exit 1; fi; \
	echo "notebooks clean"

check-sync: install
	@sum() { find recsys -name '*.py' -print0 | sort -z | xargs -0 cat | md5sum; }; before=$$(sum); $(BIN)/nbdev_export; after=$$(sum); \
	if [ "$$before" != "$$after" ]; then echo "FAIL: recsys/ was out of sync with nbs/; nbdev_export has updated it: review and commit"; exit 1; fi; \
	echo "library in sync with notebooks"

check-readme: install
	@$(BIN)/python .ci/readme.py --check

# ruff: lint (pyflakes + bugbear, pyproject.toml) on the exported package, tests and benchmarks;
# format check on tests and benchmarks (the package keeps nbdev's compact style: see pyproject.toml)
lint: install
	$(BIN)/ruff check recsys tests benchmarks .ci
	$(BIN)/ruff format --check tests benchmarks .ci
	@echo "ruff clean"

nbtest: install
	$(BIN)/nbdev_test --n_workers 2 --timing

pytest: install
	$(BIN)/python -m pytest tests -q -ra --strict-markers

# --- the developer's loop -----------------------------------------------------
# everything `make test` checks but the slow kinds of test: those that run report notebooks, start subprocesses,
# need Spark or need Chromium (their markers: tests/conftest.py); `make test` still runs them all
FAST_TESTS := not reports and not process and not spark and not browser
check: install check-clean check-sync check-readme lint pytest-fast nbtest

pytest-fast: install
	$(BIN)/python -m pytest tests -q -ra --strict-markers -m "$(FAST_TESTS)"

# --- the main job -------------------------------------------------------------
reports: install
	$(BIN)/recsys-reports --dataset synthetic --scale small $(if $(JOBS),--jobs $(JOBS))

bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# --- development helpers ------------------------------------------------------
export: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

readme: install
	$(BIN)/python .ci/readme.py --write

clean-venv:
	rm -rf $(VENV)
