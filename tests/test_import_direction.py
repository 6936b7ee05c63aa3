"""Imports point one way: schema (and the other top-level modules) <- environments <-
harness <- agents <- rl; reports reads only the top-level modules (and may be used by
any layer); nothing but cli imports cli.
Every import in the package counts, including those inside functions (the lazy imports
of heavy libraries)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "swerve"
LAYERS = ["core", "environments", "harness", "agents", "rl"]
"""Lowest first; `core` is every module directly in swerve/ (schema, errors, runrecord, ...)."""


def _part(module: str) -> str:
    """The layer (or `reports` / `cli`) a `swerve.` module belongs to."""
    parts = module.split(".")
    if len(parts) < 2:
        return "core"
    if parts[1] == "__main__":
        return "cli"
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "core"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `swerve...` module the file imports."""
    module = ".".join(("swerve", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "swerve"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "swerve":
                found.append((node.lineno, target))
    return found


def _allowed(source: str, target: str) -> bool:
    if target == "cli":
        return source == "cli"
    if source == "cli":
        return True
    if source == "reports":
        return target in ("core", "reports")
    if target == "reports":
        return True  # reports depends on core only, so using it (rl's edit-distance rewards) makes no cycle
    return LAYERS.index(target) <= LAYERS.index(source)


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        source = _part(".".join(relative.with_suffix("").parts))
        for line, target_module in _imports(path):
            target = _part(target_module)
            if not _allowed(source, target):
                found.append(f"{relative}:{line} ({source}) imports {target_module} ({target})")
    return found


def test_imports_point_one_way():
    assert violations() == [], "\n".join(["imports against the layer order:", *violations()])


@pytest.mark.parametrize(("source", "target", "ok"), [
    ("rl", "agents", True), ("agents", "rl", False), ("environments", "harness", False),
    ("reports", "core", True), ("reports", "harness", False), ("rl", "reports", True),
    ("agents", "cli", False), ("cli", "rl", True), ("core", "environments", False),
])
def test_the_rule_itself(source, target, ok):
    assert _allowed(source, target) is ok
