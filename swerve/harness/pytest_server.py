"""A pytest server for the task factory's many runs of one suite in one environment.

Every test run starts an interpreter and imports pytest before it collects a test; on the
sealed bytecode cache that is a large share of a short run (bench/bytecode_cache.py:
`cached` against `served`). The task factory runs one suite hundreds of times in one
environment, so each of its environments keeps one process that has imported pytest once
and forks a child for every run (the life cycle: swerve.harness.warm_runs):

1. `start_pytest_server(env, workdir=..., env_prefix=..., command=...)` (for a task:
   hidden_tests.open_pytest_server) writes the server into a folder
   `swerve-pytest-server` in the environment's temporary folder and starts it from `/`
   with the runs' own environment (hidden_tests.run_env_prefix: the bytecode cache, no
   plugin autoload unless the task names plugins, no user site) and PYTHONSAFEPATH. It
   imports pytest, _pytest and pluggy and refuses to serve when any module it loaded comes
   from the repository (a source that pytest itself imports, such as pluggy: a mutation of
   it must be imported by each run). The process and the folder are kept through reset()
   (`keep_process_across_reset`, `keep_across_reset`);
2. a run (`hidden_tests.run_pytest_on(..., server=...)`) writes a request (pytest's
   arguments, the command's variables, the output file, the timeout) and its name into the
   server's FIFO, and waits on a FIFO of its own for the exit code. The server forks; the
   child starts a session, takes the output file as stdout and stderr and /dev/null as
   stdin, sets the command's variables (a `PYTHONPATH=` one also leads `sys.path`, as it
   would in a new interpreter), reseeds `random`, enters the repository, appends it to
   `sys.path` for `python -m pytest` commands (as the bootstrap does, swerve.harness.runner)
   and runs pytest's console entry point; its exit handlers run before it exits. The server
   kills the child's process group at the timeout and answers `timeout`.

What a child inherits that a new interpreter would not have: the modules pytest's import
loaded (none from the repository), and the server's string hash seed, which every run of
one environment shares. A candidate's decision compares runs in one environment; the kept
candidate's task is then checked by new processes in a new environment (mint.check_task).

Only for environments that host no agent and run no patch (the task factory's sources):
anything that runs there could talk to the server. `start_pytest_server` returns None, and
runs start their own interpreter as before, when the environment cannot keep a process
(`keeps_processes` is false: every backend but Docker), the task's command is not a plain pytest command of
the default interpreter, or the server refuses or does not start.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from swerve.environments.shell import ansi_c_quote
from swerve.harness.runner import split_pytest_command

SERVER_NAME = "swerve-pytest-server"
_STARTED = "SWERVE-PYTEST-SERVER="
START_TIMEOUT_S = 60

SERVER = r'''# Written by the task factory: imports pytest once, forks one child per test run.
import json
import os
import select
import signal
import sys
import time

FOLDER = sys.argv[1]
WORKDIR = os.path.realpath(sys.argv[2])
HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != HERE]
os.environ.pop("PYTHONSAFEPATH", None)
try:
    os.setsid()
except OSError:
    pass


def _status(report):
    path = os.path.join(FOLDER, "status")
    with open(path + ".tmp", "w") as handle:
        json.dump(report, handle)
    os.rename(path + ".tmp", path)


try:
    import pytest
    import _pytest  # noqa: F401
    import pluggy  # noqa: F401
except BaseException as exc:
    _status({"ok": False, "problem": "cannot import pytest: %s: %s" % (type(exc).__name__, exc)})
    sys.exit(1)


def _inside(path):
    path = os.path.realpath(path)
    return path == WORKDIR or path.startswith(WORKDIR + os.sep)


inside = []
for name, module in list(sys.modules.items()):
    paths = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", None) or [])
    if any(isinstance(p, str) and p and _inside(p) for p in paths):
        inside.append(name)
if inside:
    _status({"ok": False, "problem": "pytest's import loaded %s from the repository" % ", ".join(sorted(inside)[:5])})
    sys.exit(1)

REQUESTS = os.open(os.path.join(FOLDER, "requests"), os.O_RDWR)
_status({"ok": True, "pid": os.getpid()})


def _exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _child(request):
    code = 1
    try:
        os.close(REQUESTS)
        os.setsid()
        out = os.open(request["output"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for name, value in request["variables"]:
            os.environ[name] = value
            if name == "PYTHONPATH":
                sys.path[0:0] = [os.path.abspath(p) for p in value.split(os.pathsep) if p]
        import importlib
        import random
        random.seed()
        importlib.invalidate_caches()
        os.chdir(WORKDIR)
        if request["append_repo"]:
            sys.path.append(WORKDIR)
        sys.argv[:] = [sys.argv[0]] + request["args"]
        main = getattr(pytest, "console_main", None)
        code = main() if main is not None else pytest.main(request["args"])
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if code is None:
        code = 0
    elif not isinstance(code, int):
        code = 1
    os._exit(code & 0xFF)


def _wait(pid, timeout):
    """The child's exit code, or None after killing its process group at the timeout."""
    deadline = time.monotonic() + timeout
    watch = None
    if hasattr(os, "pidfd_open"):
        try:
            watch = os.pidfd_open(pid)
        except OSError:
            watch = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return _exit_code(status)
            left = deadline - time.monotonic()
            if left <= 0:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if watch is not None:
                select.select([watch], [], [], left)
            else:
                time.sleep(min(0.002, left))
    finally:
        if watch is not None:
            os.close(watch)


def _serve(path):
    try:
        with open(path) as handle:
            request = json.load(handle)
        reply = request["reply"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request)
    code = _wait(pid, float(request["timeout"]))
    answer = ("timeout" if code is None else str(code)) + "\n"
    try:
        fd = os.open(reply, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, answer.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


pending = b""
while True:
    chunk = os.read(REQUESTS, 4096)
    pending += chunk
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        if line.strip():
            _serve(line.decode("utf-8", "replace").strip())
'''


@dataclass(frozen=True)
class PytestServer:
    """A started server: its folder (kept through reset()) and process id."""

    folder: str
    pid: int

    @property
    def requests(self) -> str:
        return f"{self.folder}/requests"


def served_command(command: str) -> tuple[list[tuple[str, str]], list[str], bool] | None:
    """(variables, pytest arguments, appends the repository) for a command the server can
    run: `[VAR=x ...] python -m pytest ARGS` or `[VAR=x ...] pytest ARGS` with the default
    interpreter and no interpreter options; None for anything else."""
    parts = split_pytest_command(command)
    if parts is None:
        return None
    assignments, options, args, append_repo, interpreter = parts
    if options or interpreter != "python":
        return None
    return [tuple(a.split("=", 1)) for a in assignments], args, append_repo


def start_pytest_server(env, *, workdir: str, env_prefix: str, command: str) -> PytestServer | None:
    """Start the environment's server (see the module's docstring) with the runs' variables
    `env_prefix` for the repository at `workdir`; None when it cannot serve this environment
    or `command` (the task's pytest command), and runs then start their own interpreter."""
    if served_command(command) is None or not getattr(env, "keeps_processes", False):
        return None
    quote = shlex.quote
    result = env.exec(
        f'd="${{TMPDIR:-/tmp}}"; d="${{d%/}}/{SERVER_NAME}"; rm -rf "$d" 2>/dev/null; '
        f'mkdir -p "$d" && chmod 700 "$d" && mkfifo "$d/requests" && printf \'%s\' {ansi_c_quote(SERVER)} > "$d/server.py" '
        '|| exit 1; py=$(cd / && { command -v python || command -v python3; }) || exit 1; '
        f'case "$(realpath -- "$py")/" in {quote(workdir.rstrip("/"))}/*) exit 1;; esac; '
        f'(cd / && exec {env_prefix}PYTHONSAFEPATH=1 "$py" "$d/server.py" "$d" {quote(workdir)} '
        '< /dev/null > "$d/log" 2>&1) & __server=$!; '
        f'for __i in $(seq {START_TIMEOUT_S * 20}); do [ -e "$d/status" ] && break; '
        'kill -0 "$__server" 2>/dev/null || break; sleep 0.05; done; '
        # A server that is not serving (it refused, failed or never answered) is gone on return.
        '__st=; read -r __st < "$d/status" 2>/dev/null; case "$__st" in *\'"ok": true\'*) ;; '
        '*) kill "$__server" 2>/dev/null; wait "$__server" 2>/dev/null;; esac; unset __server __st; '
        f'echo "{_STARTED}$d"; cat "$d/status" 2>/dev/null || tail -c 300 "$d/log"',
        timeout=START_TIMEOUT_S + 30,
    )
    lines = result.output.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(_STARTED)), None)
    if at is None:
        return None
    folder = lines[at][len(_STARTED):]
    try:
        status = json.loads("\n".join(lines[at + 1:]) or "{}")
    except ValueError:
        status = {}
    pid = status.get("pid") if isinstance(status, dict) and status.get("ok") else None
    if not isinstance(pid, int):  # its folder, with the status saying why, goes at the next reset
        return None
    try:
        env.keep_process_across_reset(pid)
        env.keep_across_reset(folder)
    except (NotImplementedError, ValueError):
        env.exec(f"kill -9 {pid} 2>/dev/null; rm -rf {quote(folder)}", timeout=60)
        return None
    return PytestServer(folder=folder, pid=pid)


def stop_pytest_server(env, server: PytestServer) -> None:
    """Kill the server (its folder stays until the environment goes)."""
    env.exec(f"kill -9 {server.pid} 2>/dev/null; true", timeout=60)


def request_text(server: PytestServer, command: str, *, output_file: str, reply: str, timeout: float) -> str | None:
    """The JSON request for running `command` (a pytest command); None when the server
    cannot run it (see `served_command`)."""
    served = served_command(command)
    if served is None:
        return None
    variables, args, append_repo = served
    return json.dumps({"args": args, "variables": variables, "append_repo": append_repo,
                       "output": output_file, "reply": reply, "timeout": timeout})


def client_script(server: PytestServer, *, request_file: str, reply: str, answer_marker: str, wait_s: int) -> str:
    """Shell text (bash) that hands the request to the server and prints `answer_marker`
    followed by the answer: an exit code, `timeout`, or nothing when none came within
    `wait_s` or the server has gone (checked every second). Both FIFOs are opened
    read-write, so neither open blocks when the server has gone."""
    q = shlex.quote
    return (
        f"{{ printf '%s\\n' {q(request_file)} >&9 && for ((__w = 0; __w < {int(wait_s)}; __w++)); do "
        f"read -r -t 1 __answer <&8 && break; __answer=; kill -0 {server.pid} 2>/dev/null || break; done; }} "
        f"8<>{q(reply)} 9<>{q(server.requests)}; echo \"{answer_marker}$__answer\"; unset __answer __w"
    )
