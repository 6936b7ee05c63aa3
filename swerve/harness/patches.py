"""Patches as hostile input: safety checks, application with recorded fallbacks,
and which of the files a patch touches are test-related.

A patch is refused before it reaches the repository when it names an absolute
path, climbs out with `..`, writes into `.git`, creates a symlink that points
outside the repository, or is not a diff at all. Application then tries, in
order, `git apply` (after `git apply --check`), `git apply --3way`, and
`patch --fuzz`; the method that worked is recorded in the report.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from swerve.environments.shell import ansi_c_quote

_DIFF_GIT = re.compile(r"^diff --git (\S+) (\S+)\s*$")
_HEADER_PATH_KEYS = ("--- ", "+++ ", "rename from ", "rename to ", "copy from ", "copy to ")
_NULL = "/dev/null"

TEST_CONFIG_FILES = frozenset({"pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", ".pytest.ini", "noxfile.py"})
ALWAYS_RESTORED_NAMES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini"})
TEST_DIR_NAMES = frozenset({"tests", "test"})
RUNNER_MODULES = frozenset({"pytest", "_pytest", "pluggy", "py"})
INTERPRETER_HOOK_MODULES = frozenset({"sitecustomize", "usercustomize"})
_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


@dataclass
class PatchCheck:
    """What a patch touches and whether it may be applied."""

    paths: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def is_empty_patch(patch: str | None) -> bool:
    return patch is None or not patch.strip()


def _strip_prefix(raw: str) -> str:
    raw = raw.split("\t", 1)[0].strip()
    if raw.startswith('"') and raw.endswith('"'):
        raw = raw[1:-1]
    if raw == _NULL:
        return raw
    if raw.startswith(("a/", "b/")):
        return raw[2:]
    return raw


def _path_problem(path: str) -> str | None:
    if path == _NULL:
        return None
    if not path:
        return "an empty path"
    if path.startswith("/") or path.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"absolute path {path!r}"
    parts = path.replace("\\", "/").split("/")
    if ".." in parts:
        return f"path {path!r} climbs out of the repository with '..'"
    if ".git" in parts:
        return f"path {path!r} writes into .git"
    return None


def _symlink_escapes(link: str, target: str) -> bool:
    if target.startswith("/"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    return joined == ".." or joined.startswith("../") or joined.split("/")[0] == ".git"


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def check_patch(patch: str) -> PatchCheck:
    """Parse file headers (without trusting them) and list every safety problem.

    Hunk bodies are skipped by their line counts, so a removed line that happens
    to read `--- x` is never mistaken for a header.
    """
    check = PatchCheck()
    seen: list[str] = []
    saw_change = False
    lines = patch.splitlines()
    current: str | None = None
    symlink_pending: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        hunk = _HUNK.match(line)
        if hunk:
            saw_change = True
            old = int(hunk.group(1)) if hunk.group(1) is not None else 1
            new = int(hunk.group(2)) if hunk.group(2) is not None else 1
            body_start = index + 1
            index += 1
            while index < len(lines) and (old > 0 or new > 0):
                body = lines[index]
                if body.startswith("-"):
                    old -= 1
                elif body.startswith("+"):
                    new -= 1
                elif body.startswith(" ") or body == "":
                    old -= 1
                    new -= 1
                elif body.startswith("\\"):
                    pass
                else:
                    check.problems.append(f"malformed diff: unexpected line {index + 1} inside a hunk: {body[:60]!r}")
                    break
                index += 1
            if symlink_pending:
                target = next((l[1:] for l in lines[body_start:index] if l.startswith("+")), "")
                if _symlink_escapes(symlink_pending, target):
                    check.problems.append(f"symlink {symlink_pending!r} points outside the repository ({target!r})")
                symlink_pending = None
            continue
        match = _DIFF_GIT.match(line)
        if match:
            current = _strip_prefix(match.group(2))
            seen.extend(_strip_prefix(raw) for raw in match.groups())
            symlink_pending = None
        else:
            for key in _HEADER_PATH_KEYS:
                if line.startswith(key):
                    path = _strip_prefix(line[len(key):])
                    seen.append(path)
                    if key == "+++ " and path != _NULL:
                        current = path
                    break
        if line.startswith(("new file mode 120000", "new mode 120000")):
            symlink_pending = current
        if line.startswith(("GIT binary patch", "Binary files ", "rename ", "deleted file", "new file", "old mode", "new mode", "copy ")):
            saw_change = True
        index += 1
    for path in dict.fromkeys(seen):
        problem = _path_problem(path)
        if problem:
            check.problems.append(problem)
        elif path != _NULL:
            check.paths.append(path)
    if not seen:
        check.problems.append("not a diff: no file headers ('diff --git' or '---'/'+++') found")
    elif not saw_change:
        check.problems.append("malformed diff: file headers without any hunk")
    return check


def touched_paths(patch: str) -> list[str]:
    """Repository-relative paths a patch names (safe ones only)."""
    return check_patch(patch).paths if patch else []


def is_test_path(path: str) -> bool:
    """Test code or pytest machinery: restored from base before hidden tests run."""
    parts = path.split("/")
    name = parts[-1]
    if name in ALWAYS_RESTORED_NAMES:
        return True
    if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py") or name == "tests.py"):
        return True
    return any(part in TEST_DIR_NAMES for part in parts[:-1])


def _module_root(path: str, names: frozenset[str]) -> str | None:
    """The importable root (`pkg` directory or `pkg.py` file) through which `path`
    would be imported under one of `names`, or None."""
    parts = path.split("/")
    if not parts[-1].endswith(_MODULE_SUFFIXES):
        return None
    for index, part in enumerate(parts[:-1]):
        if part in names:
            return "/".join(parts[: index + 1])
    if parts[-1].split(".", 1)[0] in names:
        return path
    return None


def runner_shadow_root(path: str) -> str | None:
    """Where `path` would shadow the test runner (`pytest.py`, `_pytest/`, `pluggy/`,
    `py.py`, ...): the module root, or None. Whether that root is the project's own
    (the pytest repository's `src/_pytest`) is decided against the base commit."""
    return _module_root(path, RUNNER_MODULES)


def is_interpreter_hook(path: str) -> bool:
    """Files the interpreter runs at start-up when they are on its path:
    `sitecustomize`, `usercustomize` and `*.pth` files."""
    return path.endswith(".pth") or _module_root(path, INTERPRETER_HOOK_MODULES) is not None


def is_test_config(path: str) -> bool:
    """Files that may carry test-runner configuration beside other settings."""
    return path.split("/")[-1] in TEST_CONFIG_FILES


def test_config_sections(path: str, text: str | None) -> str:
    """The pytest-relevant part of a config file, canonicalised for comparison.

    Only these parts decide whether a touched setup.cfg/pyproject.toml/tox.ini is
    restored, so a patch that legitimately edits package metadata keeps it.
    """
    if text is None:
        return ""
    name = path.split("/")[-1]
    if name in ("pytest.ini", ".pytest.ini", "noxfile.py"):
        return text
    if name == "pyproject.toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            return text
        try:
            data = tomllib.loads(text)
        except Exception:
            return text
        tool = data.get("tool", {}) if isinstance(data.get("tool"), dict) else {}
        import json

        picked = {key: tool.get(key) for key in ("pytest", "coverage", "tox") if key in tool}
        return json.dumps(picked, sort_keys=True, default=str)
    import configparser

    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return text
    sections = [s for s in parser.sections() if s in ("pytest", "tool:pytest") or s.startswith(("coverage:", "testenv", "tox"))]
    return "\n".join(f"[{s}]" + "".join(f"\n{k}={v}" for k, v in sorted(parser.items(s))) for s in sections)


@dataclass
class ApplyResult:
    applied: bool
    method: str | None
    output: str
    malformed: bool = False


APPLY_METHODS = (
    ("git apply", "git apply --check {p} && git apply --whitespace=nowarn {p}"),
    ("git apply --3way", "git apply --3way --whitespace=nowarn {p}"),
    ("patch --fuzz", "patch --batch --forward --fuzz=3 -p1 --no-backup-if-mismatch --reject-file=- -i {p}"),
)

_MALFORMED_MARKERS = ("corrupt patch", "No valid patches in input", "malformed patch", "Only garbage was found", "unrecognized input")


def apply_patch(env, patch: str, *, workdir: str, patch_file: str, timeout: float = 300) -> ApplyResult:
    """Apply `patch` inside `env`, trying each method on a clean tree.

    `patch_file` is an absolute path outside the repository to stage the diff in; it is
    removed afterwards (with its folder when that is left empty): a local or scratch
    environment's /tmp is the host's, which no reset empties. Each attempt is one round
    trip: stage, apply, remove. The tree is reset between attempts so a half-applied
    fallback leaves nothing.
    """
    text = patch if patch.endswith("\n") else patch + "\n"
    quoted = shlex.quote(patch_file)
    folder = shlex.quote(patch_file.rsplit("/", 1)[0] or "/")
    stage = f"mkdir -p -- {folder} && printf '%s' {ansi_c_quote(text)} > {quoted}"
    remove = f"rm -f {quoted}; rmdir {folder} 2>/dev/null"
    outputs: list[str] = []
    staged = False
    try:
        for attempt, (method, template) in enumerate(APPLY_METHODS):
            if attempt:
                env.reset()
            staged = True
            result = env.exec(f"( {stage} && cd {shlex.quote(workdir)} && {template.format(p=quoted)} 2>&1; "
                              f"status=$?; {remove}; exit $status )", timeout=timeout)
            staged = result.timed_out  # a run cut short may not have removed the file
            outputs.append(f"$ {method}\n{result.output.strip()}")
            if result.exit_code == 0 and not result.timed_out:
                return ApplyResult(True, method, "\n".join(outputs))
        env.reset()
    finally:
        if staged:
            env.exec(f"{remove}; true", timeout=60)
    text = "\n".join(outputs)
    return ApplyResult(False, None, text, malformed=any(marker in text for marker in _MALFORMED_MARKERS))


def symlink_escapes_in_env(env, paths: list[str], *, workdir: str) -> list[str]:
    """Paths whose existing parent directories resolve (through symlinks already in
    the repository) to somewhere outside it."""
    if not paths:
        return []
    root = shlex.quote(workdir)
    checks = " ".join(shlex.quote(p) for p in paths)
    script = (
        f"cd {root} && top=$(pwd -P) && for p in {checks}; do "
        'r=$(realpath -m -- "$p"); case "$r" in "$top"|"$top"/*) ;; *) printf "%s\\n" "$p";; esac; done'
    )
    result = env.exec(script, timeout=60)
    return [line for line in result.output.splitlines() if line.strip() in paths]
