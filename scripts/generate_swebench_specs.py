#!/usr/bin/env python3
"""Regenerate swerve/harness/data/swebench_specs.json from the `swebench` package.

SWE-bench 4.x keeps each repository's environment (Python version, packages,
install and test commands) as Python tables in `swebench.harness.constants`; 5.x
dropped them in favour of per-row images and eval scripts. swerve ships the 4.x
tables as data, with their provenance, so that resolving a genuine row needs
neither the package nor the network. This script is how that file is made:

    python scripts/generate_swebench_specs.py                 # installs swebench==4.1.0 into a temp dir
    python scripts/generate_swebench_specs.py --swebench-dir D # a tree that holds swebench/ (pip --target D)
    python scripts/generate_swebench_specs.py --check          # exit 1 when the shipped file differs

The package is installed with `pip install --no-deps --target` into a throwaway
directory and read without running its `__init__` (which imports docker,
datasets and more): the constants modules are plain data, the parser table is
read from the source's syntax tree.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

PACKAGE = "swebench"
VERSION = "4.1.0"
ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "swerve" / "harness" / "data" / "swebench_specs.json"
DATA_KEYS = ("specs", "install", "requirements_paths", "environment_yml_paths", "log_parsers",
             "non_test_exts", "replace_requirements")


def install_package(target: Path, version: str = VERSION) -> Path:
    """`pip install --no-deps --target` the pinned release; returns the target dir."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--target", str(target), f"{PACKAGE}=={version}"],
        check=True,
    )
    return target


def _load_constants(site: Path) -> types.ModuleType:
    """swebench.harness.constants from `site`, without running the package __init__ files."""
    package_dir = site / PACKAGE
    if not (package_dir / "harness" / "constants").is_dir():
        raise SystemExit(f"{site}: no {PACKAGE}/harness/constants here; pass the directory pip --target wrote")
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    for name, path in ((PACKAGE, package_dir), (f"{PACKAGE}.harness", package_dir / "harness")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules[name] = stub
    return importlib.import_module(f"{PACKAGE}.harness.constants")


def _installed_version(site: Path) -> str:
    for line in (site / PACKAGE / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return ast.literal_eval(line.split("=", 1)[1].strip())
    return "unknown"


def _parser_names(site: Path) -> dict[str, str]:
    """MAP_REPO_TO_PARSER_PY as {repo: parser function name}, read from the syntax tree."""
    tree = ast.parse((site / PACKAGE / "harness" / "log_parsers" / "python.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "MAP_REPO_TO_PARSER_PY" for t in node.targets):
            return {ast.literal_eval(k): v.id for k, v in zip(node.value.keys, node.value.values)}
    raise SystemExit("MAP_REPO_TO_PARSER_PY not found in swebench/harness/log_parsers/python.py")


def _replacements(site: Path) -> list[list[str | None]]:
    tree = ast.parse((site / PACKAGE / "harness" / "test_spec" / "python.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "REPLACE_REQ_PACKAGES" for t in node.targets):
            return [list(pair) for pair in ast.literal_eval(node.value)]
    return []


def _plain(value):
    """JSON-ready copy (tuples and sets become sorted lists where order is meaningless)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _own_modules() -> dict[str, types.ModuleType]:
    return {name: module for name, module in sys.modules.items() if name == PACKAGE or name.startswith(PACKAGE + ".")}


def table_data(site: Path) -> dict:
    """The data part of the table (everything but provenance) from an installed tree. The
    process's own `swebench` modules (another release, perhaps) are put back afterwards."""
    saved = _own_modules()
    try:
        constants = _load_constants(site)
        return {
            "specs": _plain(constants.MAP_REPO_VERSION_TO_SPECS_PY),
            "install": _plain(constants.MAP_REPO_TO_INSTALL_PY),
            "requirements_paths": _plain(constants.MAP_REPO_TO_REQS_PATHS),
            "environment_yml_paths": _plain(constants.MAP_REPO_TO_ENV_YML_PATHS),
            "log_parsers": _parser_names(site),
            "non_test_exts": _plain(constants.NON_TEST_EXTS),
            "replace_requirements": _replacements(site),
        }
    finally:
        for name in _own_modules():
            del sys.modules[name]
        sys.modules.update(saved)


def build_table(site: Path) -> dict:
    version = _installed_version(site)
    return {
        "provenance": {
            "package": PACKAGE,
            "version": version,
            "generated": dt.date.today().isoformat(),
            "script": "scripts/generate_swebench_specs.py",
            "sources": [
                "swebench.harness.constants.MAP_REPO_VERSION_TO_SPECS_PY",
                "swebench.harness.constants.MAP_REPO_TO_INSTALL_PY",
                "swebench.harness.constants.MAP_REPO_TO_REQS_PATHS",
                "swebench.harness.constants.MAP_REPO_TO_ENV_YML_PATHS",
                "swebench.harness.constants.NON_TEST_EXTS",
                "swebench.harness.log_parsers.python.MAP_REPO_TO_PARSER_PY (function names)",
                "swebench.harness.test_spec.python.REPLACE_REQ_PACKAGES",
            ],
        },
        **table_data(site),
    }


def differences(shipped: dict, fresh: dict) -> list[str]:
    """Data keys where the shipped table and the package disagree."""
    out = [key for key in DATA_KEYS if shipped.get(key) != fresh.get(key)]
    if shipped.get("provenance", {}).get("version") != fresh.get("provenance", {}).get("version"):
        out.append("provenance.version")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swebench-dir", type=Path, help="a directory holding swebench/ (from pip install --target)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="swebench-specs-") as tmp:
        site = args.swebench_dir or install_package(Path(tmp))
        table = build_table(site)
    if args.check:
        shipped = json.loads(args.output.read_text())
        diff = differences(shipped, table)
        if diff:
            print(f"{args.output}: differs from {PACKAGE}=={table['provenance']['version']} in {', '.join(diff)}; "
                  "rerun scripts/generate_swebench_specs.py", file=sys.stderr)
            return 1
        print(f"{args.output}: equal to {PACKAGE}=={table['provenance']['version']}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.output} from {PACKAGE}=={table['provenance']['version']} "
          f"({sum(len(v) for v in table['specs'].values())} repo/version specs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
