"""Reproduction tests written from an issue's text, as an engineer (or a model) would.

The stochastic oracle uses these to write the test file an agent leaves in its patch:
it takes the issue's own ```python examples (never the hidden tests), turns each into a
`test_issue_example_N` function in a file next to a visible test module that mentions
the symbol the issue names, imports from that module the helpers the examples use, and
asks pytest for the rest as fixtures (`runner`, `monkeypatch`, ...). An example that
cannot run that way (it leans on a parametrised value, or the issue quotes it cut
short) simply errors before and after any fix, as a careless reproduction would.

Everything here reads the problem statement and what the agent's own commands printed
in the repository; nothing reads the task's patch, test patch or test lists.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import shlex
import textwrap
from pathlib import PurePosixPath

REPRODUCTION_FILE = "test_issue_reproduction.py"
_FENCE = re.compile(r"```python[ \t]*\n(.*?)```", re.S)
_SYMBOL = re.compile(r"`([A-Za-z_][\w.]*)`")
_BUILTINS = set(dir(builtins))


def issue_examples(problem_statement: str) -> list[str]:
    """The issue's ```python blocks that parse as Python, in order, without duplicates."""
    found: list[str] = []
    for match in _FENCE.finditer(problem_statement or ""):
        code = textwrap.dedent(match.group(1)).strip("\n")
        if not code.strip() or code in found:
            continue
        try:
            ast.parse(code)
        except SyntaxError:
            continue
        found.append(code)
    return found


def issue_symbol(problem_statement: str) -> str | None:
    """The first backticked name of the issue's title that is not an exception class."""
    title = (problem_statement or "").strip().splitlines()[0] if (problem_statement or "").strip() else ""
    for name in _SYMBOL.findall(title):
        last = name.split(".")[-1]
        if not last.endswith(("Error", "Exception", "Warning")):
            return last
    return None


def free_names(code: str) -> list[str]:
    """Names `code` reads but never binds (and that are not builtins), in first-use order."""
    tree = ast.parse(code)
    bound: set[str] = set()
    used: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                bound.add(node.id)
            else:
                used[node.id] = min(used.get(node.id, (10**9, 0)), (node.lineno, node.col_offset))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return [name for name in sorted(used, key=used.get) if name not in bound and name not in _BUILTINS]


def search_command(symbol: str) -> str:
    """Find the visible test modules that mention `symbol`."""
    return (f"grep -rlw --include='test_*.py' --include='*_test.py' -- {shlex.quote(symbol)} . "
            "| grep -v /build/ | sort | head -n 20")


def pick_test_module(grep_output: str, source_paths: list[str]) -> str | None:
    """Of the test files grep listed, the one named most like a file being fixed (else the first)."""
    files = [line.strip().removeprefix("./") for line in grep_output.splitlines()
             if line.strip().endswith(".py") and not line.startswith(("grep:", "["))]
    files = [f for f in files if PurePosixPath(f).name != REPRODUCTION_FILE]
    if not files:
        return None
    stems = {PurePosixPath(path).stem for path in source_paths}

    def closeness(path: str) -> tuple[int, int]:
        stem = PurePosixPath(path).stem.removeprefix("test_").removesuffix("_test")
        return (0 if stem in stems else 1 if any(stem in s or s in stem for s in stems) else 2, files.index(path))

    return min(files, key=closeness)


_INTROSPECT = '''import importlib, json, pathlib, sys, types
path = pathlib.Path({path!r}).resolve()
parts, folder = [path.stem], path.parent
while (folder / "__init__.py").exists():
    parts.insert(0, folder.name)
    folder = folder.parent
sys.path.insert(0, str(folder))
module = importlib.import_module(".".join(parts))
found = {{}}
for name in {names!r}:
    if hasattr(module, name):
        value = getattr(module, name)
        found[name] = "module:" + value.__name__ if isinstance(value, types.ModuleType) else "attribute"
print(json.dumps({{"module": ".".join(parts), "names": found}}))
'''


def introspect_command(test_file: str, names: list[str]) -> str:
    """A shell command printing, as JSON, the module name of `test_file` and which of
    `names` it provides (and how: a module or an attribute)."""
    return f"python - <<'SWERVE_EOF'\n{_INTROSPECT.format(path=test_file, names=list(names))}SWERVE_EOF"


def parse_introspection(output: str) -> dict | None:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except json.JSONDecodeError:
                return None
            if isinstance(found, dict) and isinstance(found.get("module"), str):
                return found
    return None


def render_reproduction_test(title: str, examples: list[str], introspection: dict) -> str:
    """A pytest module with one `test_issue_example_N` per example: helpers imported from
    the visible test module, every other free name asked for as a fixture. Examples
    written as unittest methods (they use `self`) go into a `unittest.TestCase`."""
    module = introspection["module"]
    provided: dict[str, str] = introspection.get("names", {})
    imports: list[str] = []
    from_module: list[str] = []
    functions: list[str] = []
    methods: list[str] = []
    for number, code in enumerate(examples, start=1):
        fixtures = []
        for name in free_names(code):
            how = provided.get(name)
            if how is None:
                fixtures.append(name)
            elif how.startswith("module:"):
                real = how.partition(":")[2]
                line = f"import {real}" if real == name else f"import {real} as {name}"
                if line not in imports:
                    imports.append(line)
            elif name not in from_module:
                from_module.append(name)
        if "self" in fixtures:
            if "import unittest" not in imports:
                imports.append("import unittest")
            others = [name for name in fixtures if name != "self"]
            methods.append(f"    def test_issue_example_{number}({', '.join(['self', *others])}):\n"
                           f"{textwrap.indent(code, '        ')}\n")
        else:
            functions.append(f"def test_issue_example_{number}({', '.join(fixtures)}):\n{textwrap.indent(code, '    ')}\n")
    if methods:
        functions.append("class TestIssueReproduction(unittest.TestCase):\n" + "\n".join(methods))
    header = [f"# Reproduces the issue: {' '.join(title.split())[:100]}", *sorted(imports)]
    if from_module:
        header.append(f"from {module} import {', '.join(sorted(from_module))}")
    return "\n".join(header) + "\n\n\n" + "\n\n".join(functions)
