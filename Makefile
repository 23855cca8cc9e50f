# probvae: two commands. `make demo` trains the default VAE on digits; `make test` runs the tests.
# `make docs` builds the API reference into build/docs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench docs install clean

# torch is installed first, pinned to the local CPU wheel: anything that pulls torch in
# before it (pyro-ppl included) makes pip take the newest CUDA build (several GB).
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# the docs tools (the docs extra: Sphinx and numpydoc; the test extra has them too)
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

demo: $(STAMP)
	$(BIN)/probvae train --out runs/demo --overwrite
	$(BIN)/probvae sample runs/demo --n 64 --png runs/demo/samples.png --overwrite

# the suite on every core (pytest-xdist, whole files per worker so that each file's
# module-scoped fits run once); TEST_WORKERS=0 runs it in one process
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/backends.py

# the API reference, from the docstrings: open build/docs/index.html
docs: $(DOCS_STAMP)
	$(BIN)/python docs/api/build.py build/docs --strict

clean:
	rm -rf $(VENV) runs *.egg-info build/docs
