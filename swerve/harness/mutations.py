"""Candidate bugs: small procedural source transformations of a repository's code.

Each candidate changes one syntax node inside one function (libcst keeps every
other byte of the file as it was), and carries the diff that introduces the bug
and the reverse diff that fixes it. Candidates are spread over files and
functions, ordered deterministically for a seed, and deduplicated by the source
they produce. Test code, packaging scripts and docs are never mutated.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import hashlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from swerve.harness.patches import is_test_path

KINDS = (
    "flip_comparison",
    "boolean_operator",
    "arithmetic_operator",
    "off_by_one",
    "slice_bound",
    "invert_condition",
    "swap_branches",
    "drop_statement",
    "drop_guard_clause",
    "swap_arguments",
    "flip_boolean_constant",
)

SKIPPED_TOP_DIRS = frozenset(
    {"docs", "doc", "examples", "example", "bench", "benchmarks", "scripts", "tools", "ci", "build", "dist", ".github"}
)
SKIPPED_FILE_NAMES = frozenset(
    {"setup.py", "conftest.py", "noxfile.py", "tasks.py", "versioneer.py", "_version.py", "version.py", "__main__.py"}
)

_COMPARISON_FLIPS: dict[type, Callable[[], cst.BaseCompOp]] = {
    cst.LessThan: cst.GreaterThanEqual,
    cst.GreaterThanEqual: cst.LessThan,
    cst.GreaterThan: cst.LessThanEqual,
    cst.LessThanEqual: cst.GreaterThan,
    cst.Equal: cst.NotEqual,
    cst.NotEqual: cst.Equal,
    cst.In: cst.NotIn,
    cst.NotIn: cst.In,
    cst.Is: cst.IsNot,
    cst.IsNot: cst.Is,
}
_ARITHMETIC_SWAPS: dict[type, Callable[[], cst.BaseBinaryOp]] = {
    cst.Add: cst.Subtract,
    cst.Subtract: cst.Add,
    cst.Multiply: cst.FloorDivide,
    cst.FloorDivide: cst.Multiply,
    cst.Divide: cst.Multiply,
    cst.Modulo: cst.FloorDivide,
    cst.LeftShift: cst.RightShift,
    cst.RightShift: cst.LeftShift,
    cst.BitAnd: cst.BitOr,
    cst.BitOr: cst.BitAnd,
}
_AUGMENTED_SWAPS: dict[type, Callable[[], cst.BaseAugOp]] = {
    cst.AddAssign: cst.SubtractAssign,
    cst.SubtractAssign: cst.AddAssign,
    cst.MultiplyAssign: cst.FloorDivideAssign,
    cst.FloorDivideAssign: cst.MultiplyAssign,
}
_ATOMS = (
    cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Comparison, cst.Integer, cst.Float,
    cst.SimpleString, cst.List, cst.Tuple, cst.Dict, cst.Set,
)


@dataclass(frozen=True)
class Candidate:
    """One candidate bug: where it is, what kind it is, and the diffs both ways."""

    file: str
    qualname: str
    kind: str
    line: int
    bug_diff: str
    fix_diff: str
    original_source: str
    mutated_source: str

    @property
    def key(self) -> str:
        """Identity by resulting source: two mutations giving the same file are one."""
        return hashlib.sha256(f"{self.file}\0{self.mutated_source}".encode()).hexdigest()[:16]

    @property
    def lines_changed(self) -> int:
        return sum(
            1
            for line in self.fix_diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        )


@dataclass
class _Site:
    kind: str
    node: cst.CSTNode
    qualname: str
    line: int
    variant: int = 0


def unified_diff(path: str, before: str, after: str) -> str:
    """A git-style diff of one file (a/ and b/ prefixes, three lines of context)."""
    body = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=3
        )
    )
    if not body:
        return ""
    if not body.endswith("\n"):
        body += "\n\\ No newline at end of file\n"
    return f"diff --git a/{path} b/{path}\n{body}"


def is_mutable_file(path: str) -> bool:
    """Library code: not tests, not packaging scripts, not docs or examples."""
    if not path.endswith(".py") or is_test_path(path):
        return False
    parts = path.split("/")
    if parts[0] in SKIPPED_TOP_DIRS or parts[-1] in SKIPPED_FILE_NAMES:
        return False
    if any(part.startswith(".") for part in parts):
        return False
    return len(parts) > 1 or parts[0] not in SKIPPED_FILE_NAMES


def _is_docstring(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_string(node: cst.CSTNode) -> bool:
    return isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString))


def _exits(block: cst.BaseSuite) -> bool:
    """The block ends by leaving: return, raise, continue or break."""
    body = block.body if isinstance(block, cst.IndentedBlock) else [block]
    if not body:
        return False
    last = body[-1]
    small = last.body if isinstance(last, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else [last]
    return bool(small) and isinstance(small[-1], (cst.Return, cst.Raise, cst.Continue, cst.Break))


def _is_type_checking_or_main(test: cst.BaseExpression) -> bool:
    code = cst.Module(body=[]).code_for_node(test)
    return "TYPE_CHECKING" in code or "__name__" in code


class _SiteCollector(cst.CSTVisitor):
    """Finds every place a mutation kind applies, inside function bodies only."""

    METADATA_DEPENDENCIES = (cst.metadata.PositionProvider,)

    def __init__(self, kinds: set[str]) -> None:
        super().__init__()
        self.kinds = kinds
        self.sites: list[_Site] = []
        self._scope: list[str] = []
        self._function_depth = 0
        self._annotation_depth = 0

    def _add(self, kind: str, node: cst.CSTNode, variant: int = 0) -> None:
        if kind not in self.kinds or self._function_depth == 0 or self._annotation_depth:
            return
        line = self.get_metadata(cst.metadata.PositionProvider, node).start.line
        self.sites.append(_Site(kind, node, ".".join(self._scope), line, variant))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scope.append(node.name.value)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scope.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._scope.append(node.name.value)
        self._function_depth += 1
        node.body.visit(self)
        return False

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scope.pop()
        self._function_depth -= 1

    def visit_Annotation(self, node: cst.Annotation) -> None:
        self._annotation_depth += 1

    def leave_Annotation(self, original_node: cst.Annotation) -> None:
        self._annotation_depth -= 1

    def visit_Decorator(self, node: cst.Decorator) -> bool:
        return False

    def visit_ComparisonTarget(self, node: cst.ComparisonTarget) -> None:
        if type(node.operator) in _COMPARISON_FLIPS:
            self._add("flip_comparison", node)

    def visit_BooleanOperation(self, node: cst.BooleanOperation) -> None:
        self._add("boolean_operator", node)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if type(node.operator) not in _ARITHMETIC_SWAPS:
            return
        if isinstance(node.operator, (cst.Add, cst.Modulo)) and (_is_string(node.left) or _is_string(node.right)):
            return
        self._add("arithmetic_operator", node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if type(node.operator) in _AUGMENTED_SWAPS and not _is_string(node.value):
            self._add("arithmetic_operator", node)

    def visit_Integer(self, node: cst.Integer) -> None:
        try:
            int(node.value, 0)
        except ValueError:
            return
        self._add("off_by_one", node)

    def visit_Slice(self, node: cst.Slice) -> None:
        if node.lower is not None:
            self._add("slice_bound", node, variant=0)
        if node.upper is not None:
            self._add("slice_bound", node, variant=1)

    def visit_If(self, node: cst.If) -> None:
        if _is_type_checking_or_main(node.test):
            return
        self._add("invert_condition", node)
        if isinstance(node.orelse, cst.Else):
            self._add("swap_branches", node)
        if node.orelse is None and _exits(node.body):
            self._add("drop_guard_clause", node)

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self._add("invert_condition", node)
        self._add("swap_branches", node)

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        statements = [s for s in node.body if not _is_docstring(s)]
        if len(statements) < 2:
            return
        for statement in statements:
            if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
                continue
            small = statement.body[0]
            if isinstance(small, (cst.Expr, cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Return)):
                if isinstance(small, cst.Expr) and isinstance(small.value, (cst.Ellipsis, *_ATOMS[4:9])):
                    continue
                if isinstance(small, cst.Return) and statement is not statements[-1]:
                    continue
                self._add("drop_statement", statement)

    def visit_Call(self, node: cst.Call) -> None:
        positional = [a for a in node.args if a.keyword is None and not a.star]
        if len(positional) >= 2 and node.args[0] is positional[0] and node.args[1] is positional[1]:
            first, second = (cst.Module(body=[]).code_for_node(a.value) for a in positional[:2])
            if first != second:
                self._add("swap_arguments", node)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value in ("True", "False"):
            self._add("flip_boolean_constant", node)


def _parenthesized(expression: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(expression, _ATOMS) or expression.lpar:
        return expression
    return expression.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _negated(expression: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(expression, cst.UnaryOperation) and isinstance(expression.operator, cst.Not):
        inner = expression.expression
        return inner.with_changes(lpar=[], rpar=[]) if inner.lpar and isinstance(inner, _ATOMS) else inner
    return cst.UnaryOperation(operator=cst.Not(), expression=_parenthesized(expression))


def _shifted(expression: cst.BaseExpression, delta: int) -> cst.BaseExpression:
    if isinstance(expression, cst.Integer):
        value = int(expression.value, 0) + delta
        if value >= 0:
            return cst.Integer(str(value))
        return cst.UnaryOperation(operator=cst.Minus(), expression=cst.Integer(str(-value)))
    operator = cst.Add() if delta > 0 else cst.Subtract()
    return cst.BinaryOperation(left=_parenthesized(expression), operator=operator, right=cst.Integer(str(abs(delta))))


def _mutated_node(site: _Site, node: cst.CSTNode, delta: int):
    """The replacement for `node` (updated children included); RemoveFromParent to drop."""
    kind = site.kind
    if kind == "flip_comparison":
        return node.with_changes(operator=_COMPARISON_FLIPS[type(node.operator)]())
    if kind == "boolean_operator":
        swapped = cst.Or() if isinstance(node.operator, cst.And) else cst.And()
        return node.with_changes(operator=swapped)
    if kind == "arithmetic_operator":
        table = _AUGMENTED_SWAPS if isinstance(node, cst.AugAssign) else _ARITHMETIC_SWAPS
        return node.with_changes(operator=table[type(node.operator)]())
    if kind == "off_by_one":
        value = int(node.value, 0)
        return node.with_changes(value=str(value + 1 if value == 0 or delta > 0 else value - 1))
    if kind == "slice_bound":
        field = "lower" if site.variant == 0 else "upper"
        return node.with_changes(**{field: _shifted(getattr(node, field), delta)})
    if kind == "invert_condition":
        return node.with_changes(test=_negated(node.test))
    if kind == "swap_branches":
        if isinstance(node, cst.IfExp):
            return node.with_changes(body=node.orelse, orelse=node.body)
        return node.with_changes(body=node.orelse.body, orelse=node.orelse.with_changes(body=node.body))
    if kind in ("drop_statement", "drop_guard_clause"):
        return cst.RemoveFromParent()
    if kind == "swap_arguments":
        args = list(node.args)
        first, second = args[0], args[1]
        args[0] = first.with_changes(value=second.value)
        args[1] = second.with_changes(value=first.value)
        return node.with_changes(args=args)
    if kind == "flip_boolean_constant":
        return node.with_changes(value="False" if node.value == "True" else "True")
    raise ValueError(f"unknown mutation kind {kind!r}")


class _OneNodeMutator(cst.CSTTransformer):
    """Replaces exactly one node (found by identity in the parsed module)."""

    def __init__(self, site: _Site, delta: int) -> None:
        super().__init__()
        self.site = site
        self.delta = delta
        self.done = False

    def on_leave(self, original_node, updated_node):
        if original_node is self.site.node:
            self.done = True
            return _mutated_node(self.site, updated_node, self.delta)
        return updated_node


@dataclass
class _ParsedFile:
    path: str
    source: str
    module: cst.Module
    sites: list[_Site]
    top_starts: list[int]
    """First line of each top-level statement: a mutation re-renders only its own."""


def _parse(path: str, source: str, kinds: set[str]) -> _ParsedFile | None:
    try:
        module = cst.parse_module(source)
        wrapper = cst.metadata.MetadataWrapper(module, unsafe_skip_copy=True)
    except Exception:
        return None
    collector = _SiteCollector(kinds)
    wrapper.visit(collector)
    positions = wrapper.resolve(cst.metadata.PositionProvider)
    starts = [positions[statement].start.line for statement in module.body]
    return _ParsedFile(path, source, module, collector.sites, starts)


def mutate_source(source: str, path: str = "module.py", kinds: Iterable[str] | None = None, seed: int = 0) -> list[Candidate]:
    """Every candidate for one file's source, in a deterministic order (for tests and
    for looking at what a kind does)."""
    parsed = _parse(path, source, set(kinds or KINDS))
    if parsed is None:
        return []
    rng = random.Random(f"{seed}:{path}")
    seen: set[str] = set()
    out = []
    for site in parsed.sites:
        candidate = _materialize(parsed, site, rng)
        if candidate is not None and candidate.key not in seen:
            seen.add(candidate.key)
            out.append(candidate)
    return out


def _materialize(parsed: _ParsedFile, site: _Site, rng: random.Random) -> Candidate | None:
    delta = rng.choice((1, -1))
    mutator = _OneNodeMutator(site, delta)
    index = max(bisect.bisect_right(parsed.top_starts, site.line) - 1, 0)
    body = list(parsed.module.body)
    try:
        body[index] = body[index].visit(mutator)
        mutated = parsed.module.with_changes(body=body).code
        compile(mutated, parsed.path, "exec")
    except Exception:
        return None
    if not mutator.done or mutated == parsed.source:
        return None
    return Candidate(
        file=parsed.path,
        qualname=site.qualname,
        kind=site.kind,
        line=site.line,
        bug_diff=unified_diff(parsed.path, parsed.source, mutated),
        fix_diff=unified_diff(parsed.path, mutated, parsed.source),
        original_source=parsed.source,
        mutated_source=mutated,
    )


def source_files(root: Path, include: Iterable[str] | None = None) -> list[str]:
    """Repository-relative paths of the library files that may be mutated."""
    patterns = list(include or [])
    files = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if not is_mutable_file(relative):
            continue
        if patterns and not any(fnmatch.fnmatch(relative, p) for p in patterns):
            continue
        files.append(relative)
    return files


def generate_candidates(
    root: Path,
    *,
    seed: int = 0,
    kinds: Iterable[str] | None = None,
    include: Iterable[str] | None = None,
) -> Iterator[Candidate]:
    """Candidates over the repository at `root`, spread round-robin over files, then
    over functions within a file, then over kinds within a function; the order is
    fixed by `seed`; a candidate producing a source already produced is skipped."""
    wanted = set(kinds or KINDS)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown mutation kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    rng = random.Random(seed)
    files = source_files(root, include)
    rng.shuffle(files)
    queues: list[tuple[_ParsedFile, Iterator[_Site]]] = []
    for path in files:
        parsed = _parse(path, (root / path).read_text(encoding="utf-8", errors="replace"), wanted)
        if parsed is None or not parsed.sites:
            continue
        queues.append((parsed, _spread(parsed.sites, rng)))
    seen: set[str] = set()
    while queues:
        still = []
        for parsed, sites in queues:
            site = next(sites, None)
            if site is None:
                continue
            still.append((parsed, sites))
            candidate = _materialize(parsed, site, random.Random(f"{seed}:{parsed.path}:{site.line}:{site.kind}"))
            if candidate is not None and candidate.key not in seen:
                seen.add(candidate.key)
                yield candidate
        queues = still


def _spread(sites: list[_Site], rng: random.Random) -> Iterator[_Site]:
    by_function: dict[str, dict[str, list[_Site]]] = {}
    for site in sites:
        by_function.setdefault(site.qualname, {}).setdefault(site.kind, []).append(site)
    functions = sorted(by_function)
    rng.shuffle(functions)
    per_function = []
    for name in functions:
        groups = [by_function[name][kind] for kind in sorted(by_function[name])]
        for group in groups:
            rng.shuffle(group)
        rng.shuffle(groups)
        per_function.append(_round_robin([iter(g) for g in groups]))
    return _round_robin(per_function)


def _round_robin(iterators: list[Iterator]) -> Iterator:
    active = list(iterators)
    while active:
        still = []
        for iterator in active:
            item = next(iterator, None)
            if item is not None:
                still.append(iterator)
                yield item
        active = still
