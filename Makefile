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

# The CPU benchmarks, each with the arguments of its run in BENCHMARKS.md;
# bench/gpu_hf_policy.py needs a GPU and is run by hand on one.
BENCH_RUNS := "attempts.py" \
              "bytecode_cache.py" \
              "container_cost.py" \
              "env_latency.py" \
              "exec_breakdown.py" \
              "eval_overhead.py" \
              "learn.py --steps 80" \
              "logprobs.py" \
              "mint.py" \
              "report.py" \
              "rollouts.py" \
              "swebench_slice.py" \
              "test_run_costs.py"

bench: install system-deps
	bash scripts/with-docker.sh bash -c 'for run in $(BENCH_RUNS); do echo "== bench/$$run"; $(PY) bench/$$run || exit 1; done'

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
