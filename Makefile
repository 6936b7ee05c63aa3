# The README's two commands: `make demo` and `make test`. Both install what they need.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
EXTRAS ?= rl,dev
PYTEST_ARGS ?=

.PHONY: install system-deps demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed

system-deps:
	bash scripts/install-system-deps.sh

demo: install system-deps
	bash scripts/with-docker.sh bash scripts/demo.sh

test: install system-deps
	bash scripts/with-docker.sh $(PY) -m pytest $(PYTEST_ARGS)

bench: install system-deps
	bash scripts/with-docker.sh bash -c 'for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done'

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
