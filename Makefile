# make demo: set up .venv when missing and run the main job.  make test: set up and run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= $(or $(SOMELVLM_DATA),../shared/data)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/somelvlm tasks
	@if [ -d "$(DATA)" ]; then \
		$(BIN)/somelvlm data build --data-root "$(DATA)" --out out/somedata-demo --max-per-task 20; \
	else \
		echo "no data folder at $(DATA): set DATA=... (or SOMELVLM_DATA) to also build a small SoMeData sample"; \
	fi

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
