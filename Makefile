# kiln: make demo / make test / make bench work on a fresh machine with Python 3.11 and the package
# registries. Everything is installed into .venv by `make setup` (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kiln-installed
# torch is pinned to the CPU build this kind of machine keeps on disk; elsewhere pip takes it from PyPI.
TORCH  ?= torch==2.13.0
# torchvision pinned to the release built for that torch: installed together, pip never swaps torch for
# a newer (CUDA) build to satisfy a newer torchvision.
TORCHVISION ?= torchvision==0.28.0

.PHONY: setup demo test test-fast test-faults bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" "$(TORCHVISION)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The demo: the Wikipedia sample from gensim's test data (offline) -> a word2vec job on the embedded
# stack -> a registered model, its metrics, and the nearest neighbours of a few probe words.
DEMO_MODEL ?= enwiki-demo
DEMO_WORDS ?= war king music river computer
DEMO_CNN ?= digits-demo
PYDATA = $(BIN)/python -c "import bench.corpora as c; print(c.$(1)())"

demo: setup
	@echo "== preparing the demo corpus (Wikipedia sample from gensim's test data)"
	$(eval CORPUS := $(shell $(call PYDATA,wiki_extract_text)))
	$(eval QW := $(shell $(call PYDATA,questions_words)))
	$(eval WS := $(shell $(call PYDATA,wordsim353)))
	@echo "== kiln submit (starts the embedded stack under $${KILN_HOME:-~/.kiln} if needed)"
	$(BIN)/kiln submit word2vec $(CORPUS) --name $(DEMO_MODEL) --epochs 10 --min-count 5 \
		--eval-analogies $(QW) --eval-similarity $(WS) --follow
	$(BIN)/kiln models show $(DEMO_MODEL)
	@for w in $(DEMO_WORDS); do echo "== kiln similar $(DEMO_MODEL) $$w --top 8"; \
		$(BIN)/kiln similar $(DEMO_MODEL) $$w --top 8 || exit 1; done
	@echo "== kiln submit cnn digits (LeNet-5 on scikit-learn's 8x8 digits, the default recipe)"
	$(BIN)/kiln submit cnn digits --name $(DEMO_CNN) --follow
	$(BIN)/kiln models show $(DEMO_CNN)
	@d=$$($(BIN)/python -m workers.cnn.sample_images 8) && echo "== kiln predict $(DEMO_CNN) $$d --top 3" && \
		$(BIN)/kiln predict $(DEMO_CNN) $$d --top 3
	@echo "== the stack keeps running (kiln jobs, kiln models list ...); stop it with: $(BIN)/kiln down"

test: setup browser
	$(BIN)/python -m pytest -q -rs

# Fault injection: real processes (redis-server, Ray, the stack daemon, the dispatcher) killed at real
# moments. `make test` runs these too.
test-faults: setup
	$(BIN)/python -m pytest -q -rs tests/faults

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow"

# The benchmark corpus (bench/corpora.py): Debian's python3-doc manuals + dict-wn's WordNet glosses +
# the Wikipedia sample. The packages are installed when missing and we are root with apt-get;
# otherwise the benchmark falls back to the Wikipedia sample.
BENCH_PKGS := python3-doc dict-wn
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BENCH_PKGS)

.PHONY: bench-data
bench-data: setup
	@if dpkg -s $(BENCH_PKGS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "== apt-get install $(BENCH_PKGS)"; \
		$(APT_INSTALL) || { apt-get update -q && $(APT_INSTALL); } \
		|| echo "bench-data: could not install $(BENCH_PKGS); the benchmark falls back to the Wikipedia sample"; \
	else echo "bench-data: $(BENCH_PKGS) missing and not installable here (needs root and apt-get); the benchmark falls back to the Wikipedia sample"; fi
	$(BIN)/python -m bench.corpora

bench: setup bench-data
	$(BIN)/python -m bench.cli_latency
	$(BIN)/python -m bench.word2vec_vs_gensim

# The browser test (tests/api/test_browser.py) drives Debian's headless Chromium through chromedriver:
# installed when missing and we are root with apt-get; otherwise that test skips and says why.
BROWSER_PKGS := chromium chromium-driver
APT_BROWSER := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PKGS)

.PHONY: browser
browser:
	@if command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "== apt-get install $(BROWSER_PKGS)"; \
		$(APT_BROWSER) || { apt-get update -q && $(APT_BROWSER); } \
		|| echo "browser: could not install $(BROWSER_PKGS); the browser test will skip"; \
	else echo "browser: $(BROWSER_PKGS) missing and not installable here (needs root and apt-get); the browser test will skip"; fi

clean:
	rm -rf $(VENV) build *.egg-info
