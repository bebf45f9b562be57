# varstream — every target sets up what it needs from a fresh clone (with ../shared beside it).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_LIBS := .cache/kafka/libs
OUT ?= OUT
# Every install is pinned by requirements.lock (refresh command in README, "Reproducible installs").
LOCK := requirements.lock

.PHONY: demo test bench lint kafka prometheus clean

# demo, test and bench need the plugin plus [train] (training, evaluation, plots) and [dev] (tests).
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[train,dev]'
	touch $@

# Apache Kafka's broker jars from Maven Central (pinned in deploy/kafka/pom.xml).
$(KAFKA_LIBS)/.fetched: deploy/kafka/pom.xml
	deploy/kafka/fetch-jars.sh $(KAFKA_LIBS)
	touch $@

kafka: $(KAFKA_LIBS)/.fetched

# Prometheus (and promtool) from Debian's packages.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus)

demo: $(VENV)/.installed kafka
	$(VENV)/bin/varstream demo --out $(OUT)

test: $(VENV)/.installed kafka prometheus
	$(PY) -m ruff check .
	$(PY) -m pytest -ra --durations=15

bench: $(VENV)/.installed kafka
	$(PY) benchmarks/run.py --out $(OUT)/bench

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .cache $(OUT) .pytest_cache .ruff_cache
