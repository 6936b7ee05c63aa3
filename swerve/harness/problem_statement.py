"""Problem statements for minted tasks, written the way a user files an issue:
what they ran, what they observed, what they expected.

The facts come only from the failing tests' output (the assertion in the test,
the exception or the assertion-rewrite explanation) — never from the source
change. Any line of the source change that would leak into the text is dropped,
and so are tracebacks into library code, file names with line numbers and
memory addresses. An optional writer (any `callable(prompt) -> str`, e.g. an LLM
behind a Policy, see `policy_writer`) may rephrase the facts; its text is used
only if it passes the same leak check.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from swerve.harness.patches import is_test_path

_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$")
_SECTION = re.compile(r"^={5,} .* ={5,}$")
_FRAME_SEPARATOR = re.compile(r"^(_ ){5,}_?$")
_LOCATION = re.compile(r"^(\S+\.py):(\d+):")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_CALLED = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(")
_NOT_API = set(dir(builtins)) | {
    "raises", "warns", "approx", "assert", "pytest", "self", "mark", "parametrize", "subTest", "fail", "skipTest",
}
_GIVEAWAYS = ("mutation", "mutant", "diff", "patch", "swerve", "off-by-one", "off by one", "inverted", "swapped")
MAX_OBSERVED_LINES = 12


@dataclass
class TestFailure:
    """What one failing test showed: the failing statement in the test, and the
    error lines pytest printed (assertion explanation or exception)."""

    test_id: str
    statement: str = ""
    context: list[str] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)

    @property
    def exception(self) -> str:
        for line in self.error_lines:
            match = re.match(r"^([A-Za-z_][\w.]*(Error|Exception|Warning|Exit|Interrupt)|Failed):", line)
            if match:
                return match.group(1)
        return ""


def _short_head(test_id: str) -> str:
    """pytest's FAILURES header for a node id: classes and name joined by dots."""
    parts = test_id.split("::")
    return ".".join(parts[1:]) if len(parts) > 1 else test_id


def parse_pytest_failures(output: str) -> dict[str, dict]:
    """Blocks of pytest's FAILURES/ERRORS sections, keyed by their header
    (`TestClass.test_name[param]`), each as {frames: [[lines]], location: [..]}."""
    blocks: dict[str, dict] = {}
    current: dict | None = None
    in_section = False
    for raw in output.splitlines():
        line = raw.rstrip()
        if _SECTION.match(line):
            in_section = " FAILURES " in line or " ERRORS " in line
            current = None
            continue
        if not in_section:
            continue
        header = _HEADER.match(line)
        if header and not _FRAME_SEPARATOR.match(line):
            name = re.sub(r"^(ERROR|FAILURE) at (setup|teardown|call) of ", "", header.group(1))
            current = blocks.setdefault(name, {"frames": [[]], "locations": []})
            continue
        if current is None:
            continue
        if _FRAME_SEPARATOR.match(line):
            current["frames"].append([])
            continue
        location = _LOCATION.match(line)
        if location:
            current["locations"].append(location.group(1))
            continue
        current["frames"][-1].append(line)
    return blocks


def failures_from_output(output: str, test_ids: Iterable[str]) -> list[TestFailure]:
    """A TestFailure for each of `test_ids` that has a block in pytest's output."""
    blocks = parse_pytest_failures(output)
    failures = []
    for test_id in test_ids:
        head = _short_head(test_id)
        block = blocks.get(head) or next((b for name, b in blocks.items() if name.startswith(head + " (")), None)
        if block is None:
            failures.append(TestFailure(test_id=test_id))
            continue
        failure = TestFailure(test_id=test_id)
        first = block["frames"][0]
        first_in_test = not block["locations"] or is_test_path(block["locations"][0]) or block["locations"][0].startswith("test")
        if first_in_test:
            code = [line for line in first if not line.lstrip().startswith(("E ", "^")) and line.strip() and "^^^" not in line]
            for index, line in enumerate(code):
                if line.startswith(">"):
                    failure.statement = line[1:].strip()
                    failure.context = [c.strip() for c in code[max(0, index - 3) : index] if not c.strip().startswith(("def ", "@", "self =", "async def"))]
                    failure.context = [c for c in failure.context if "=" not in c or not re.match(r"^\w+ = ", c) or "(" in c]
                    break
        for frame in block["frames"]:
            for line in frame:
                if line.startswith("E "):
                    failure.error_lines.append(_ADDRESS.sub("", line[1:].strip()) if line[1:].strip() else "")
        failure.error_lines = [line for line in failure.error_lines if line is not None][:40]
        failures.append(failure)
    return failures


def test_body(test_id: str, sources: dict[str, str], max_lines: int = 25) -> str:
    """The failing test's body (dedented, no def line) when it is short enough to
    serve as a reproduction; '' otherwise."""
    parts = test_id.split("::")
    text = sources.get(parts[0])
    if not text or len(parts) < 2:
        return ""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return ""
    scope: list = tree.body
    node = None
    for name in [*parts[1:-1], parts[-1].split("[", 1)[0]]:
        node = next((n for n in scope if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)
        if node is None:
            return ""
        scope = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
        return ""
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) else node.body
    if not body:
        return ""
    lines = text.splitlines()[body[0].lineno - 1 : body[-1].end_lineno]
    if len(lines) > max_lines:
        return ""
    return textwrap.dedent("\n".join(lines)).strip()


def _parses(code: str) -> bool:
    try:
        ast.parse(textwrap.dedent(code))
        return True
    except SyntaxError:
        return False


def _snippet(failure: TestFailure) -> str:
    """The failing statement with as much of the lines before it as still parses
    (a fragment of a larger expression is worse than none)."""
    if not failure.statement:
        return ""
    for start in range(len(failure.context) + 1):
        code = "\n".join([*failure.context[start:], failure.statement])
        if _parses(code):
            return code
    return failure.statement


def _called_names(statement: str) -> list[str]:
    names = []
    for name in _CALLED.findall(statement):
        leaf = name.split(".")[-1]
        if leaf in _NOT_API or leaf.startswith("_") or leaf.startswith("assert"):
            continue
        names.append(leaf)
    return list(dict.fromkeys(names))


def _observed(failure: TestFailure) -> tuple[str, str]:
    """(observed, expected) sentences and an observed block for one failure."""
    lines = [line for line in failure.error_lines if "Use -v to get" not in line and "use -vv" not in line]
    while lines and not lines[-1].strip():
        lines.pop()
    text = "\n".join(lines[:MAX_OBSERVED_LINES])
    exception = failure.exception
    if exception == "Failed" and "DID NOT RAISE" in text:
        raised = text.split("DID NOT RAISE", 1)[1].strip().strip("<>").replace("class ", "").strip("'")
        return f"No exception is raised.\n\n```\n{text}\n```", f"`{raised}` is raised."
    if exception and exception != "AssertionError":
        return (
            f"It raises `{exception}`:\n\n```\n{text}\n```",
            "No exception; the call returns the correct result.",
        )
    return f"The check fails:\n\n```\n{text}\n```", "The check above holds."


def render_problem_statement(
    failures: list[TestFailure], *, package: str, version: str = "", examples: int = 2, sources: dict[str, str] | None = None
) -> str:
    """The issue text from the failures (the first `examples` with a usable statement);
    `sources` (test file texts) lets a short failing test serve as the reproduction."""
    sources = sources or {}
    usable = [f for f in failures if f.statement and f.error_lines] or [f for f in failures if f.error_lines]
    if not usable:
        return (
            f"Some behaviour of `{package}` changed: a part of the library no longer returns what it is documented "
            "to return, and code that relied on it now fails. It should behave as documented again."
        )
    bodies = {f.test_id: test_body(f.test_id, sources) for f in usable}
    local = {name for body in bodies.values() for name in re.findall(r"(?:def\s+(\w+)|^\s*(\w+)\s*=)", body, re.M) for name in name if name}
    names = [name for failure in usable for name in _called_names(failure.statement) if name not in local]
    if not names:
        counted = Counter(n for f in usable for n in _called_names(bodies[f.test_id]) if n not in local)
        names = [n for n, _ in counted.most_common()]
    subject = f"`{names[0]}`" if names else f"`{package}`"
    title = f"{subject} returns a wrong result" if not usable[0].exception or usable[0].exception == "AssertionError" else f"{subject} raises `{usable[0].exception}`"
    if usable[0].exception == "Failed":
        title = f"{subject} does not raise where it should"
    where = f"{package} {version}".strip()
    parts = [f"{title}\n", f"I ran into this with `{where}`."]
    shown = 0
    seen_statements: set[str] = set()
    for failure in usable:
        if shown >= examples:
            break
        key = failure.statement or "\n".join(failure.error_lines)
        if key in seen_statements:
            continue
        seen_statements.add(key)
        shown += 1
        observed, expected = _observed(failure)
        code = bodies[failure.test_id] or _snippet(failure)
        if code:
            parts.append(f"\nThis check fails:\n\n```python\n{code}\n```")
        parts.append(f"\n**Observed:** {observed}")
        parts.append(f"\n**Expected:** {expected}")
    if len(failures) > shown:
        parts.append(f"\nOther uses of the same functionality fail in the same way ({len(failures)} checks in all).")
    return "\n".join(parts).strip() + "\n"


def leaks(text: str, forbidden_lines: Iterable[str]) -> list[str]:
    """Lines of the source change (or giveaway words) that appear in `text`."""
    found = []
    lowered = text.lower()
    for line in forbidden_lines:
        stripped = line.strip()
        if len(stripped) >= 8 and stripped in text:
            found.append(stripped)
    for word in _GIVEAWAYS:
        if re.search(rf"\b{re.escape(word)}\b", lowered):
            found.append(word)
    return found


def changed_lines(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _scrub(text: str, forbidden_lines: Iterable[str]) -> str:
    bad = [line.strip() for line in forbidden_lines if len(line.strip()) >= 8]
    return "\n".join(line for line in text.splitlines() if not any(b in line for b in bad))


def writer_prompt(draft: str, package: str) -> str:
    return (
        f"Rewrite the following bug report about the Python library `{package}` so it reads like an issue a user "
        "filed on GitHub: a short title line, what they did, what they observed, what they expected. Keep every "
        "code snippet and error message exactly as given. Do not guess at the cause, do not suggest a fix, do not "
        "mention tests, patches or how the bug was made. Reply with the issue text only.\n\n" + draft
    )


def write_problem_statement(
    output: str,
    fail_to_pass: list[str],
    *,
    package: str,
    version: str = "",
    fix_diff: str = "",
    writer: Callable[[str], str] | None = None,
    test_sources: dict[str, str] | None = None,
) -> str:
    """The problem statement for a minted task from the failing run's pytest output
    (and the failing tests' own code when short, as the reproduction)."""
    forbidden = changed_lines(fix_diff)
    failures = failures_from_output(output, fail_to_pass)
    draft = _scrub(render_problem_statement(failures, package=package, version=version, sources=test_sources), forbidden)
    if writer is not None:
        try:
            rewritten = (writer(writer_prompt(draft, package)) or "").strip()
        except Exception:
            rewritten = ""
        if rewritten and not leaks(rewritten, forbidden):
            return rewritten + "\n"
    return draft


def policy_writer(policy) -> Callable[[str], str]:
    """Adapt a Policy (`act(messages, tools) -> Completion`) to a writer."""

    def write(prompt: str) -> str:
        completion = policy.act([{"role": "user", "content": prompt}], [])
        return completion.text

    return write
