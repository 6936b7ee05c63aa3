"""Genuine SWE-bench rows: the environment and test command the official harness gives them.

A genuine row (one with an `environment_setup_commit`, and neither its own test
command nor a 5.x `eval_script`) is resolved into Task fields from SWE-bench
4.x's spec tables, shipped as data in swerve/harness/data/swebench_specs.json
(see docs/swebench.md for where the table comes from):

- `python`: the spec's Python version ("3.9"); images build with that Python or
  refuse with one clear line.
- `pre_install`: the spec's pre_install shell commands, in order, run before
  the install (root, in the environment image); whether one can run offline is
  the image builder's decision.
- `install_cmd`: the spec's install command (`python -m pip install -e .`).
- `env_requirements`: pip specifiers, in install order: the requirements file the
  spec names (`packages: requirements.txt`), read at `environment_setup_commit`
  from the row's own repository, never from the network; or the spec's
  `packages` list; then the spec's `pip_packages`. A later pin of the same
  distribution replaces an earlier one (SWE-bench installs pip_packages after
  the requirements, so its pins win); one `pip install` of the list gives the
  official set.
- `test_requirements`: empty (the spec's packages are the whole environment).
- `eval_commands`: the spec's eval_commands, run in the test shell before the
  test command (Django's locale exports).
- `test_cmd`: the spec's test command; `test_directives`: what SWE-bench appends
  to it (the test patch's files; Django: dotted test labels without `tests/`).
- `log_parser`: SWE-bench's parser name for the repository (`parse_log_sympy`).
- `spec_source`: provenance, e.g. `swebench 4.1.0 specs[sympy/sympy][1.12]`.
- `spec_error`: set instead of the above when no spec covers the row or its
  requirements cannot be read; the row loads, and evaluating it fails with that line.
"""

from swerve.harness.swebench.directives import directives_for
from swerve.harness.swebench.resolve import apply_spec, is_genuine_row, resolve_rows
from swerve.harness.swebench.specs import SpecError, spec_for, spec_table

__all__ = ["SpecError", "apply_spec", "is_genuine_row", "resolve_rows", "spec_for", "spec_table", "directives_for"]
