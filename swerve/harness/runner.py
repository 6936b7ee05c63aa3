"""Start pytest so that nothing in the repository can replace it.

`python -m pytest` from the repository root puts the root first on `sys.path`, so a
`pytest.py` (or `_pytest/`, `pluggy/`) added there replaces the runner. Instead the
hidden tests start from a small bootstrap script written into the run's nonce
results directory, outside the repository:

- the interpreter is named by its absolute path (resolved from `/`, never from the
  repository) and runs with PYTHONSAFEPATH, so neither the current directory nor
  the script's directory leads `sys.path`;
- before any test is collected, the bootstrap imports pytest and checks where
  every top-level module already loaded came from (`pytest`, `_pytest`, `pluggy`,
  `py`, their dependencies, `sitecustomize`, whatever a `.pth` file imported): one
  loaded from a file or folder that the model patch added is refused before a
  test runs, with its path written to a report (`runner_not_genuine`). Files the
  repository had at its base commit (the pytest repository's own `src/_pytest`,
  which a fix may change, even by adding a submodule) and files the environment
  built (`_version.py`) are accepted;
- `python -m pytest` commands keep their meaning (the repository is importable)
  by appending the repository to the end of `sys.path`, after the standard
  library and site-packages, once pytest is loaded.

Python older than 3.11 ignores PYTHONSAFEPATH; there the bootstrap removes its own
directory and '' from `sys.path` itself (the directory is ours, outside the repo).
"""

from __future__ import annotations

import json
import posixpath
import shlex

RUNNER_REFUSED_EXIT = 86
RUNNER_IMPORT_FAILED_EXIT = 87
CHECKED_MODULES = ("pytest", "_pytest", "pluggy", "py", "sitecustomize", "usercustomize")

BOOTSTRAP = r'''# Written by the test harness for one run; starts pytest and checks where it came from.
import json
import os
import sys

WORKDIR = os.path.realpath(sys.argv[1])
ADDED = sys.argv[2]
REPORT = sys.argv[3]
APPEND_REPO = sys.argv[4] == "1"
ARGS = sys.argv[6:]
HERE = os.path.dirname(os.path.realpath(__file__))
CHECKED = %(checked)s


def _write(report):
    with open(REPORT, "w") as handle:
        json.dump(report, handle)


_FOLDERS = {}


def _real(path):
    """os.path.realpath(path), each folder resolved once: a module's file is its folder's
    real path joined with its name, resolved again only when the name is itself a link."""
    if not path:
        return ""
    folder, name = os.path.split(path)
    if not folder or name in ("", ".", ".."):
        return os.path.realpath(path)
    real_folder = _FOLDERS.get(folder)
    if real_folder is None:
        real_folder = _FOLDERS[folder] = os.path.realpath(folder)
    joined = os.path.join(real_folder, name)
    return os.path.realpath(joined) if os.path.islink(joined) else joined


sys.path[:] = [p for p in sys.path if p and _real(p) != HERE]
os.environ.pop("PYTHONSAFEPATH", None)  # applied to this interpreter; not to the tests' subprocesses
FOUND = []


class _Recorder(object):
    """Records where every module imported from here on was found, so a shadow
    that swaps itself out of sys.modules is still seen."""

    def find_spec(self, name, path=None, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                paths = [spec.origin] if isinstance(spec.origin, str) else []
                paths += [p for p in (spec.submodule_search_locations or []) if isinstance(p, str)]
                FOUND.append((name, [_real(p) for p in paths]))
                return spec
        return None


sys.meta_path.insert(0, _Recorder())
try:
    import pytest  # noqa: F401
    import _pytest  # noqa: F401
    import pluggy  # noqa: F401
except BaseException as exc:
    _write({"ok": False, "import_error": "%%s: %%s" %% (type(exc).__name__, exc)})
    sys.stderr.write("the test runner could not import pytest: %%s: %%s\n" %% (type(exc).__name__, exc))
    sys.stderr.flush()
    os._exit(%(import_failed)d)


def _inside(path):
    return path == WORKDIR or path.startswith(WORKDIR + os.sep)


def _origins():
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        paths = []
        try:
            origin = getattr(module, "__file__", None)
            if isinstance(origin, str) and origin:
                paths.append(_real(origin))
            for entry in list(getattr(module, "__path__", None) or []):
                if isinstance(entry, str):
                    paths.append(_real(entry))
        except Exception:
            continue
        inside = [p for p in paths if _inside(p)]
        if inside or name in CHECKED:
            found[name] = inside or paths[:1]
    return found


def _added():
    try:
        with open(ADDED) as handle:
            return set(line.strip() for line in handle if line.strip())
    except OSError:
        return set()


def _added_by_patch(rel, added):
    parts = rel.split("/")
    return any("/".join(parts[:i]) in added for i in range(1, len(parts) + 1))


origins = _origins()
for _name, _paths in FOUND:
    _inside_paths = [p for p in _paths if _inside(p)]
    if _inside_paths:
        origins.setdefault(_name, [])
        origins[_name] = list(dict.fromkeys(origins[_name] + _inside_paths))
added = _added()
problems = []
for name, paths in sorted(origins.items()):
    if "." in name:
        continue
    for path in paths:
        if _inside(path):
            rel = os.path.relpath(path, WORKDIR).replace(os.sep, "/")
            if _added_by_patch(rel, added):
                problems.append("%%s loaded from %%s, which the patch added" %% (name, rel))
report = {"ok": not problems, "problems": problems,
          "origins": {name: paths for name, paths in origins.items() if name in CHECKED}}
_write(report)
if problems:
    sys.stderr.write("the test runner was refused: %%s\n" %% "; ".join(problems))
    sys.stderr.flush()
    os._exit(%(refused)d)
sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _Recorder)]
if APPEND_REPO:
    sys.path.append(WORKDIR)
sys.argv[:] = [sys.argv[0]] + ARGS
main = getattr(pytest, "console_main", None)
sys.exit(main() if main is not None else pytest.main(ARGS))
''' % {"checked": repr(CHECKED_MODULES), "import_failed": RUNNER_IMPORT_FAILED_EXIT, "refused": RUNNER_REFUSED_EXIT}


def split_pytest_command(command: str) -> tuple[list[str], list[str], list[str], bool, str] | None:
    """(env assignments, interpreter options, pytest args, appends repo, interpreter name)
    for `[VAR=x ...] python[X.Y] [opts] -m pytest ARGS` or `[VAR=x ...] pytest ARGS`;
    None for any other form (those run as written)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    assignments = []
    while argv and "=" in argv[0] and not argv[0].startswith("-") and argv[0].split("=", 1)[0].isidentifier():
        assignments.append(argv.pop(0))
    if not argv:
        return None
    program = posixpath.basename(argv[0])
    if program in ("pytest", "py.test"):
        return assignments, [], argv[1:], False, "python"
    if not (program.startswith("python") and all(c.isdigit() or c == "." for c in program[6:])):
        return None
    index = 1
    while index < len(argv) - 1:
        if argv[index] in ("-W", "-X"):
            index += 2
            continue
        if argv[index] == "-m":
            if argv[index + 1] in ("pytest", "py.test"):
                interpreter = argv[0] if argv[0].startswith("/") else program
                return assignments, argv[1:index], argv[index + 2:], True, interpreter
            return None
        if not argv[index].startswith("-"):
            return None
        index += 1
    return None


def bootstrap_command(command: str, *, workdir: str, added_file: str, script: str,
                      report: str) -> tuple[str, str] | None:
    """(setup, command): shell text that finds the interpreter by its absolute path,
    and the command that runs `command` (a pytest invocation) through the bootstrap
    at `script`; None when `command` is not a form the bootstrap understands.

    The command starts with the interpreter (`"$__py" ...`), so it can follow an
    `env NAME=VALUE ...` prefix. An interpreter that cannot be found, or that lives
    inside the repository, is replaced by `false` (the run then reports nothing).
    """
    parts = split_pytest_command(command)
    if parts is None:
        return None
    assignments, options, args, append_repo, interpreter = parts
    q = shlex.quote
    if interpreter.startswith("/"):
        find = f"__py={q(interpreter)}"
    else:
        alternatives = [interpreter] + [name for name in ("python", "python3") if name != interpreter]
        find = "__py=$(cd / && { " + " || ".join(f"command -v {q(n)}" for n in alternatives) + "; })"
    setup = (
        f"{find}; "
        'case "$__py" in /*) ;; *) echo "no absolute Python interpreter found" >&2; __py=false;; esac; '
        f'case "$(realpath -- "$__py" 2>/dev/null)/" in {q(workdir.rstrip("/"))}/*) '
        'echo "the Python interpreter lives inside the repository" >&2; __py=false;; esac; '
    )
    run = " ".join([
        *(q(a) for a in assignments),
        "PYTHONSAFEPATH=1", '"$__py"', *(q(o) for o in options), q(script),
        q(workdir), q(added_file), q(report), "1" if append_repo else "0", "--", *(q(a) for a in args),
    ])
    return setup, run


def read_runner_report(text: str | None) -> dict:
    """The bootstrap's report, or {} when it wrote none or it is unreadable."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
