# The two commands a new user runs: `make demo` and `make test`. Everything else is setup,
# done idempotently: a second run installs nothing (stamp files record what was done).
PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
JARS_DIR    := .jars
REQS        := requirements/base.txt requirements/spark.txt requirements/embed.txt requirements/track.txt requirements/train.txt requirements/dev.txt requirements/constraints.txt
DEMO_OUT    ?= demo-output
# Two workers (pytest-xdist), fed whole modules in collection order, the end-to-end ones first;
# tests/conftest.py groups them (the installed wheel's tests share one worker).
PYTEST_ARGS ?= -n 2 --dist loadgroup --no-loadscope-reorder --durations=25
export HOURGLASS_JARS_DIR := $(abspath $(JARS_DIR))
export DS_ACCELERATOR ?= cpu
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: setup demo test lint bench clean-demo

setup: $(VENV)/.installed $(JARS_DIR)/.fetched

$(VENV)/.installed: $(REQS) setup.py pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt $(foreach r,$(filter-out %constraints.txt,$(REQS)),-r $(r))
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
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

# pytest exits 5 when it collected nothing: that must fail loudly, never pass.
test: setup
	$(PY) -m ruff check libs jobs tests benchmarks notebooks
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: setup
	$(PY) -m ruff check libs jobs tests benchmarks notebooks

clean-demo:
	rm -rf $(DEMO_OUT)
