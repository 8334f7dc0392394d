# The two commands a new user runs: `make demo` and `make test`. Everything else is setup,
# done idempotently: a second run installs nothing (stamp files record what was done).
PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
JARS_DIR    := .jars
# What the pipeline needs (make demo; plus pyproject's build requirements, setuptools and wheel,
# for the editable install without build isolation), and what only the tests, linters and the
# scheduler and bundle checks need on top (make test).
REQS        := requirements/base.txt requirements/spark.txt requirements/embed.txt requirements/track.txt requirements/train.txt
DEV_REQS    := requirements/dev.txt
DEMO_OUT    ?= demo-output
# Two workers (pytest-xdist), fed whole modules in collection order, the end-to-end ones first;
# tests/conftest.py groups them (the installed wheel's tests share one worker).
PYTEST_ARGS ?= -n 2 --dist loadgroup --no-loadscope-reorder --durations=25
# The inner loop: every pure unit test that is not slow, and the Spark tests that say most about
# the core: slice writes of shared tables, and encode and stats against their numpy references.
FAST_TESTS  := tests/unit \
	tests/spark/test_tables.py::test_write_slice_creates_then_replaces_only_its_slice \
	tests/spark/test_tables.py::test_quarantine_slices_are_replaced_per_stage \
	tests/spark/test_encode.py::test_codes_equal_the_kernel_and_counts_reconcile \
	tests/spark/test_stats_spark.py::test_fixed_length_matches_reference
export HOURGLASS_JARS_DIR := $(abspath $(JARS_DIR))
export DS_ACCELERATOR ?= cpu
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: setup setup-dev demo demo-search test test-fast lint docs clean-demo

setup: $(VENV)/.installed $(JARS_DIR)/.fetched

setup-dev: setup $(VENV)/.installed-dev

$(VENV)/.installed: $(REQS) requirements/constraints.txt setup.py pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt $(foreach r,$(REQS),-r $(r)) setuptools wheel
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed $(DEV_REQS)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt $(foreach r,$(DEV_REQS),-r $(r))
	$(PY) -m pip check
	touch $@

$(JARS_DIR)/.fetched: deploy/jars/pom.xml
	rm -rf $(JARS_DIR) && mkdir -p $(JARS_DIR)
	mvn --batch-mode --quiet -f deploy/jars/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(abspath $(JARS_DIR))
	ls $(JARS_DIR)/delta-spark_*.jar >/dev/null
	touch $@

demo: setup
	$(PY) jobs/pipeline.py --config configs/demo.yaml

# The same sample as personalized search: queries derived from category paths, then the
# pipeline with prompts of the query and the history (docs/search.md)
demo-search: setup
	$(PY) -m hourglass.search.queries --dataset amazon-office --out $(DEMO_OUT)/search/data
	$(PY) jobs/pipeline.py --config configs/demo-search.yaml

# pytest exits 5 when it collected nothing: that must fail loudly, never pass.
test: setup-dev
	$(PY) -m ruff check libs jobs tests benchmarks notebooks
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-fast: setup-dev
	$(PY) -m ruff check libs jobs tests benchmarks notebooks
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow and not e2e" $(FAST_TESTS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: setup-dev
	$(PY) -m ruff check libs jobs tests benchmarks notebooks

# docs/jobs.md from the typed configs (tests/unit/test_docs.py fails when it is stale)
docs: setup
	$(PY) -m hourglass.docs > docs/jobs.md

clean-demo:
	rm -rf $(DEMO_OUT)
