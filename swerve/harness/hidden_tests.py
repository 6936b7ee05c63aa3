"""The hidden-test run inside an Environment, built so a hostile patch cannot forge it.

Order of operations (the model patch is already applied):
1. every test-related file the model patch touched is restored from the base
   commit (or removed if it did not exist there); a touched config file whose
   pytest/coverage/tox sections changed is restored too; the instance is flagged;
   files that would shadow the runner (`pytest.py`, `_pytest/`, `pluggy/`, `py.py`
   added where the base commit had none) or hook the interpreter (`sitecustomize`,
   `usercustomize`, `*.pth`) are restored or removed too, each with a named flag;
2. files the test patch touches are restored/removed, then the test patch applied;
3. for pytest runs, canary tests are appended to each graded test module
   (swerve.harness.canaries);
4. the tests run with results written as JUnit XML into a fresh directory outside
   the repository whose name carries a random nonce; third-party plugin autoloading
   is off; pytest starts from a bootstrap outside the repository with an absolute
   interpreter and a safe import path, and refuses to run when the runner was
   loaded from a file the patch added (swerve.harness.runner); stdout is parsed
   only for runners without JUnit, and only between markers that carry the nonce;
5. the runner's exit code and the canaries are checked against what the results
   claim; the canaries' own results are removed before grading.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from swerve.environments.shell import ansi_c_quote
from swerve.errors import InfraError
from swerve.harness import logparsers
from swerve.harness.swebench.official_log import official_log
from swerve.harness.canaries import Canary, canary_disagreements, plant_canaries, strip_canaries
from swerve.harness.patches import (
    apply_patch,
    is_interpreter_hook,
    is_test_config,
    is_test_path,
    runner_shadow_root,
    test_config_sections,
    touched_paths,
)
from swerve.harness.pytest_server import PytestServer, client_script, request_text, start_pytest_server
from swerve.harness.runner import (
    BOOTSTRAP,
    RUNNER_IMPORT_FAILED_EXIT,
    RUNNER_REFUSED_EXIT,
    bootstrap_command,
    read_runner_report,
)
from swerve.schema import TestStatus

SWEBENCH_START = ">>>>> Start Test Output"
SWEBENCH_END = ">>>>> End Test Output"


@dataclass
class TestRun:
    """What the hidden-test run produced, before grading."""

    statuses: dict[str, TestStatus] = field(default_factory=dict)
    output: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    source: str = ""
    tamper_flags: list[str] = field(default_factory=list)
    tests_touched: list[str] = field(default_factory=list)
    error: str = ""
    flaky_tests: list[str] = field(default_factory=list)
    command: str = ""


def new_nonce() -> str:
    return secrets.token_hex(12)


def _base_ref(env) -> str:
    return getattr(env, "base_commit", "") or getattr(env.info, "base_commit", "") or "HEAD"


def _workdir(env) -> str:
    return getattr(env, "workdir", "") or env.info.workdir


def _base_text(env, path: str) -> str | None:
    """`path` as it is at the base commit, or None when it did not exist there."""
    ref = _base_ref(env)
    quoted = shlex.quote(f"{ref}:{path}")
    probe = env.exec(f"cd {shlex.quote(_workdir(env))} && git cat-file -e {quoted} 2>/dev/null && echo present || echo absent", timeout=60)
    if "present" not in probe.output:
        return None
    tmp = f"/tmp/swerve-show-{new_nonce()}"
    env.exec(f"cd {shlex.quote(_workdir(env))} && git show {quoted} > {tmp} 2>/dev/null", timeout=60)
    try:
        return env.read_file(tmp)
    finally:
        env.exec(f"rm -f {tmp}", timeout=60)


def _current_text(env, path: str) -> str | None:
    try:
        return env.read_file(path)
    except (FileNotFoundError, OSError):
        return None


def restore_from_base(env, paths: list[str]) -> None:
    """Put each path back as it is at the base commit; delete it if it was not there."""
    if not paths:
        return
    env.exec("\n".join([f"cd {shlex.quote(_workdir(env))} || exit 1", *_restore_lines(env, paths)]), timeout=300)


def _restore_lines(env, paths: list[str]) -> list[str]:
    """Shell lines (run in the workdir) that put `paths` back as they are at base: all
    removed, then those the base has (files or folders) checked out in one git call
    (two processes in all however many paths; paths taken literally, never as globs)."""
    if not paths:
        return []
    ref = shlex.quote(_base_ref(env))
    quoted = " ".join(shlex.quote(path) for path in paths)
    return [
        f"rm -rf -- {quoted}",
        f"git --literal-pathspecs ls-tree -z --name-only {ref} -- {quoted} "
        f"| xargs -0 -r git --literal-pathspecs checkout -q {ref} --",
    ]


def paths_at_base(env, paths: list[str]) -> set[str]:
    """Which of `paths` (files or folders) exist at the base commit."""
    if not paths:
        return set()
    wd = shlex.quote(_workdir(env))
    listing = env.exec(f"cd {wd} && git ls-tree -r -t --name-only {shlex.quote(_base_ref(env))}", timeout=120)
    present = set(listing.output.splitlines()) if listing.exit_code == 0 else set()
    return {path for path in paths if path in present}


def runner_file_flags(env, model_paths: list[str]) -> list[tuple[str, str]]:
    """(path, flag) for each file the model patch touched that would shadow the test
    runner or hook the interpreter: `runner_shadowed:<root>` when the module root
    (`pytest.py`, `src/_pytest`, ...) did not exist at base (changing the pytest
    repository's own `_pytest` is a fix, not shadowing), `interpreter_hook:<path>`
    for sitecustomize/usercustomize/*.pth files."""
    roots = {path: runner_shadow_root(path) for path in model_paths}
    existing = paths_at_base(env, sorted({root for root in roots.values() if root}))
    found = []
    for path in model_paths:
        if is_interpreter_hook(path):
            found.append((path, f"interpreter_hook:{path}"))
        elif roots[path] and roots[path] not in existing:
            found.append((path, f"runner_shadowed:{roots[path]}"))
    return found


def restore_runner_files(env, model_paths: list[str]) -> list[str]:
    """Put runner-shadowing and interpreter-hook files back as they are at base
    (removing new ones); returns their flags (one per module root or hook)."""
    found = runner_file_flags(env, model_paths)
    restore_from_base(env, [path for path, _ in found])
    return list(dict.fromkeys(flag for _, flag in found))


def added_paths(env, model_paths: list[str]) -> list[str]:
    """The files and folders the model patch added (absent at the base commit)."""
    candidates: set[str] = set()
    for path in model_paths:
        parts = path.split("/")
        candidates.update("/".join(parts[:index]) for index in range(1, len(parts) + 1))
    present = paths_at_base(env, sorted(candidates))
    return sorted(candidates - present)


def tampered_test_files(env, model_paths: list[str]) -> list[str]:
    """Test-related files the model patch touched that must go back to base."""
    touched = []
    for path in model_paths:
        if is_interpreter_hook(path):
            continue
        if is_test_path(path):
            touched.append(path)
        elif is_test_config(path):
            if test_config_sections(path, _base_text(env, path)) != test_config_sections(path, _current_text(env, path)):
                touched.append(path)
    return touched


def _files_of(test_ids: list[str]) -> list[str]:
    files = []
    for test in test_ids:
        head = test.split("::", 1)[0]
        if "::" in test and head.endswith(".py"):
            files.append(head)
    return list(dict.fromkeys(files))


def uses_pytest(task) -> bool:
    cmd = (task.test_cmd or "").strip()
    return not cmd or "pytest" in cmd.split()[0:3] or "py.test" in cmd or " -m pytest" in f" {cmd}"


SUMMARY_FLAG = "-rpsxXEf"
"""pytest's short summary for rows without their own test command: `-rA`'s letters in
`-rA`'s order without `P`, so a line per test (PASSED ones included) in the order
SWE-bench's log parsers expect (they keep a test's last line: a test that passed its
call but errored in teardown prints PASSED, then ERROR), without `-rA`'s PASSES section
of passing tests' captured output, which costs ~30% more CPU on large suites. Rows with a
test command (genuine SWE-bench rows: `pytest -rA`) keep `-rA`, as the official harness."""

TRACEBACK_FLAG = "--tb=native"
"""Failure tracebacks for rows without their own test command: Python's own format.
pytest's default (and `--tb=short`) finds each failing frame's statement by parsing
the test module's whole source, ~0.3 s a run for a 6,000-line module; every graded
module has a failing canary, so the default made every run of a large module pay
it. The native traceback still names each frame, line and the assertion's message
(the canary's token included). Rows with a test command keep its own `--tb` choice
(SWE-bench's own commands mostly say `--tb=no`)."""


def pytest_command(task, *, junit_path: str, targets: list[str]) -> str:
    """The pytest invocation: JUnit outside the repo, no cache, no plugin autoload."""
    base = (task.test_cmd or "").strip() or "python -m pytest"
    if (task.test_cmd or "").strip():
        summary = "" if "-rA" in base.split() else "-rA"
    else:
        summary = f"{SUMMARY_FLAG} {TRACEBACK_FLAG}"
    plugins = " ".join(f"-p {shlex.quote(p)}" for p in task.pytest_plugins)
    flags = (
        f"{summary} -p no:cacheprovider -o junit_family=xunit1 -o junit_logging=no "
        f"--junitxml={shlex.quote(junit_path)} {plugins}"
    ).strip()
    args = " ".join(shlex.quote(t) for t in targets)
    return f"{base} {flags} {args}".strip()


def run_env_prefix(task, bytecode_cache: str = "") -> str:
    """The test command's environment: no pytest options or plugins from the caller's
    variables, no user site; no bytecode written, or, with `bytecode_cache` (a sealed
    cache, see swerve.harness.bytecode_cache), bytecode read from that folder."""
    autoload = "" if task.pytest_plugins else "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "
    bytecode = (f"PYTHONPYCACHEPREFIX={shlex.quote(bytecode_cache)}" if bytecode_cache
                else "PYTHONDONTWRITEBYTECODE=1")
    return f"env -u PYTEST_ADDOPTS -u PYTEST_PLUGINS {autoload}{bytecode} PYTHONNOUSERSITE=1 "


def _pytest_consistent(statuses: dict[str, TestStatus], exit_code: int) -> tuple[bool, str]:
    """pytest exits 0 only when nothing failed, 1 when something did, 5 when nothing ran."""
    bad = any(s in (TestStatus.FAILED, TestStatus.ERROR) for s in statuses.values())
    if exit_code == 0 and bad:
        return False, "pytest exited 0 although JUnit reports failures"
    if exit_code == 1 and not bad:
        return False, "pytest exited 1 (tests failed) but JUnit reports no failure"
    if exit_code == 5 and statuses:
        return False, "pytest exited 5 (no tests collected) but JUnit lists tests"
    if exit_code not in (0, 1, 5):
        return False, f"pytest exited {exit_code} (interrupted, internal or usage error)"
    return True, ""


def _between_markers(text: str, start: str, end: str) -> str | None:
    if start not in text:
        return None
    body = text.split(start, 1)[1]
    if end in body:
        body = body.rsplit(end, 1)[0]
    return body


SERVER_GRACE_S = 30
"""Seconds a served run waits for the server's answer beyond its timeout (the server kills
the run at the timeout and answers at once)."""


def _run_captured(env, task, command: str, *, nonce: str, output_file: str, timeout: float, shown: str,
                  source: str, markers: tuple[str, str] | None, setup: str = "", bytecode_cache: str = "",
                  served: tuple[PytestServer, str, str] | None = None) -> TestRun:
    """Run `command` in the workdir (stdin closed, stderr merged) with its output in
    `output_file`, framed by `markers` when given (else the file starts empty). The
    exit code comes back on a nonce-carrying line of the shell's own output, which
    the code under test does not write to. With `served` (server, request file, reply
    FIFO), the environment's pytest server runs it (swerve.harness.pytest_server)."""
    opening = f"echo {markers[0]} > {output_file}" if markers else f": > {output_file}"
    closing = f"echo {markers[1]} >> {output_file}; " if markers else ""
    answer = f"SWERVE-EXIT-{nonce}="
    if served is None:
        launch = (f"{{ {run_env_prefix(task, bytecode_cache)}{command} < /dev/null >> {output_file} 2>&1; __rc=$?; }}; "
                  f"{closing}echo \"{answer}$__rc\"")
    else:
        server, request_file, reply = served
        launch = (client_script(server, request_file=request_file, reply=reply, answer_marker=answer,
                                wait_s=int(timeout) + SERVER_GRACE_S) + f"; {closing}")
    script = f"{setup}cd {shlex.quote(_workdir(env))} && {opening} && {launch}"
    result = env.exec(script, timeout=timeout if served is None else timeout + 2 * SERVER_GRACE_S)
    timed_out = result.timed_out or f"{answer}timeout" in result.output
    if served is not None and not timed_out and not any(
            line.startswith(answer) and line != answer for line in result.output.splitlines()):
        raise InfraError(f"the pytest server in {env.info.instance_id} did not answer within "
                         f"{int(timeout) + SERVER_GRACE_S}s ({result.output.strip()[-200:]})")
    run = TestRun(command=shown, timed_out=timed_out, source=source,
                  exit_code=_reported_exit_code(result.output, nonce))
    try:
        run.output = env.read_file(output_file)
    except (FileNotFoundError, OSError):
        run.output = result.output
    if timed_out:
        run.error = f"tests timed out after {timeout:.0f}s"
    return run


def _reported_exit_code(output: str, nonce: str) -> int | None:
    code = None
    for line in output.splitlines():
        if line.startswith(f"SWERVE-EXIT-{nonce}="):
            try:
                code = int(line.split("=", 1)[1])
            except ValueError:
                pass
    return code


def _default_markers(nonce: str) -> tuple[str, str]:
    return f"SWERVE-START-{nonce}", f"SWERVE-END-{nonce}"


def _run_pytest(env, task, targets: list[str], nonce: str, timeout: float, label: str, *,
                canaries: list[Canary] = (), added: list[str] = (), bytecode_cache: str = "",
                server: PytestServer | None = None) -> TestRun:
    """pytest on `targets` through the bootstrap (or `server`), read back from its JUnit
    file; the run's results folder is removed however the run ends."""
    with _results_folder(env, nonce) as results_dir:
        return _run_pytest_in(env, task, targets, nonce, timeout, label, results_dir,
                              canaries=canaries, added=added, bytecode_cache=bytecode_cache, server=server)


@contextmanager
def _results_folder(env, nonce: str) -> Iterator[str]:
    """The run's results folder in the environment, removed however the run ends
    (a local or scratch environment's /tmp is the host's)."""
    folder = f"/tmp/swerve-results-{nonce}"
    try:
        yield folder
    finally:
        try:
            env.exec(f"rm -rf {folder}", timeout=60)
        except Exception:  # a closed or broken environment: nothing left to clean in it
            pass


def _run_pytest_in(env, task, targets: list[str], nonce: str, timeout: float, label: str, results_dir: str, *,
                   canaries: list[Canary], added: list[str], bytecode_cache: str = "",
                   server: PytestServer | None = None) -> TestRun:
    junit = f"{results_dir}/{label}.xml"
    output_file = f"{results_dir}/{label}.out"
    runner_report = f"{results_dir}/{label}.runner.json"
    command = pytest_command(task, junit_path=junit, targets=targets)
    prepare = f"mkdir -p {results_dir} && chmod 700 {results_dir} && rm -f {junit} {output_file} {runner_report}"
    request = None
    if server is not None and not added and not canaries:  # the factory's own runs only
        reply = f"{results_dir}/{label}.reply"
        request = request_text(server, command, output_file=output_file, reply=reply, timeout=timeout)
    if request is not None:  # the request and its reply FIFO made in the same round trip
        request_file = f"{results_dir}/{label}.request.json"
        prepared = env.exec(f"{prepare} && mkfifo {reply} && printf '%s' {ansi_c_quote(request)} > {request_file}",
                            timeout=60)
        if prepared.exit_code != 0:
            raise OSError(f"cannot prepare the test run in {results_dir}: {prepared.output.strip()[:200]}")
        run = _run_captured(env, task, command, nonce=nonce, output_file=output_file, timeout=timeout,
                            shown=f"(pytest server {server.pid}) {run_env_prefix(task, bytecode_cache)}{command}",
                            source="junit", markers=_default_markers(nonce), served=(server, request_file, reply))
        return run if run.timed_out else _read_junit_results(env, task, run, junit)
    boot = bootstrap_command(command, workdir=_workdir(env), added_file=f"{results_dir}/added.txt",
                             script=f"{results_dir}/runner.py", report=runner_report)
    setup = ""
    if boot is not None:  # the bootstrap and the list of added files written in the same round trip
        listing = "".join(f"{path}\n" for path in added)
        prepare += (f" && printf '%s' {ansi_c_quote(BOOTSTRAP)} > {results_dir}/runner.py"
                    f" && printf '%s' {ansi_c_quote(listing)} > {results_dir}/added.txt")
        setup, command = boot
    prepared = env.exec(prepare, timeout=60)
    if prepared.exit_code != 0:
        raise OSError(f"cannot prepare the test run in {results_dir}: {prepared.output.strip()[:200]}")
    run = _run_captured(
        env, task, command, nonce=nonce, output_file=output_file, timeout=timeout,
        shown=setup + run_env_prefix(task, bytecode_cache) + command, source="junit", markers=_default_markers(nonce),
        setup=setup, bytecode_cache=bytecode_cache,
    )
    if run.timed_out:
        return run
    if boot is not None and _runner_refused(env, run, runner_report):
        return run
    return _read_junit_results(env, task, run, junit, canaries)


def _read_junit_results(env, task, run: TestRun, junit: str, canaries: list[Canary] = ()) -> TestRun:
    """The run's statuses from its JUnit file, checked against its exit code, its canaries
    and its printed output (each disagreement flagged on the run)."""
    try:
        xml = env.read_file(junit)
    except (FileNotFoundError, OSError):
        run.error = "the test run wrote no JUnit results (it exited before reporting, or crashed)"
        run.tamper_flags.append("no_junit_results")
        return run
    try:
        statuses = logparsers.parse_junit_xml(xml)
    except logparsers.JUnitFormatError as exc:
        run.error = f"JUnit results unreadable: {exc}"
        run.tamper_flags.append("bad_junit_results")
        return run
    if run.exit_code is not None:
        consistent, why = _pytest_consistent(statuses, run.exit_code)
        if not consistent:
            favourable = not any(s in (TestStatus.FAILED, TestStatus.ERROR) for s in statuses.values())
            run.error = why
            run.tamper_flags.append("exit_code_mismatch")
            if favourable or run.exit_code not in (0, 1, 5):
                statuses = {t: (s if s in (TestStatus.FAILED, TestStatus.ERROR) else TestStatus.ERROR) for t, s in statuses.items()}
    if canaries:
        graded = [*task.FAIL_TO_PASS, *task.PASS_TO_PASS]
        problems = canary_disagreements(list(canaries), statuses, xml, run.exit_code, graded)
        if problems:
            run.tamper_flags.append("canary_forged")
            run.error = "the test results are forged: " + "; ".join(problems)
        statuses = strip_canaries(statuses, list(canaries))
    if fake_results_in_output(run.output, statuses, ignore=canaries):
        run.tamper_flags.append("fake_results_in_output")
    run.statuses = statuses
    return run


def _runner_refused(env, run: TestRun, report_path: str) -> bool:
    """Read the bootstrap's report; True (with the run's error set) when pytest could
    not be imported or was loaded from a file the patch added."""
    try:
        report = read_runner_report(env.read_file(report_path))
    except (FileNotFoundError, OSError):
        report = {}
    if report.get("problems") or run.exit_code == RUNNER_REFUSED_EXIT and not report.get("ok"):
        run.tamper_flags.append("runner_not_genuine")
        run.error = "the test runner was not the environment's: " + "; ".join(
            report.get("problems") or ["the runner check refused to start the tests"])
        return True
    if report.get("import_error") or run.exit_code == RUNNER_IMPORT_FAILED_EXIT and not report.get("ok"):
        run.error = f"the test runner could not import pytest: {report.get('import_error', 'see the test output')}"
        return True
    return False


def fake_results_in_output(output: str, statuses: dict[str, TestStatus], *, ignore: list[Canary] = ()) -> bool:
    """stdout claims PASSED for a test the JUnit file does not show passing
    (information only: captured output of honest tests can look the same). A test
    whose summary also has an ERROR line (it passed its call, then errored in
    teardown: JUnit says ERROR) is not such a claim."""
    skip = {name for canary in ignore for name in canary.names}
    lines = output.splitlines()
    errored = {line.split()[1] for line in lines if line.startswith("ERROR ") and len(line.split()) > 1}
    for line in lines:
        if line.startswith("PASSED "):
            name = line.split()[1] if len(line.split()) > 1 else ""
            if name.rsplit("::", 1)[-1] in skip or name in errored:
                continue
            status = statuses.get(line[len("PASSED "):].strip(), statuses.get(name))
            if name and (status is None or not status.counts_as_pass):
                return True
    return False


def _run_stdout(env, task, script_body: str, nonce: str, timeout: float, parser: str, *, markers: tuple[str, str] | None = None) -> TestRun:
    """A runner without JUnit: parse its stdout between nonce-carrying markers (ours,
    or `markers` that the script prints itself)."""
    with _results_folder(env, nonce) as results_dir:
        return _run_stdout_in(env, task, script_body, nonce, timeout, parser, results_dir, markers=markers)


def _run_stdout_in(env, task, script_body: str, nonce: str, timeout: float, parser: str, results_dir: str, *,
                   markers: tuple[str, str] | None) -> TestRun:
    script_file = f"{results_dir}/run.sh"
    env.exec(f"mkdir -p {results_dir} && chmod 700 {results_dir}", timeout=60)
    env.write_file(script_file, script_body)
    run = _run_captured(
        env, task, f"bash {script_file}", nonce=nonce, output_file=f"{results_dir}/stdout.out", timeout=timeout,
        shown=script_body, source=f"stdout:{parser}", markers=None if markers else _default_markers(nonce),
    )
    if run.timed_out:
        return run
    start, end = markers or _default_markers(nonce)
    body = _between_markers(run.output, start, end)
    if body is None:
        run.error = "the test output has no start marker (the run did not start)"
        return run
    parse = logparsers.parser_for(parser)
    statuses = parse(body)
    if parse is logparsers.parse_pytest_summary and logparsers.pytest_conflicts(body):
        run.tamper_flags.append("conflicting_results_in_output")
    if markers is None and run.exit_code not in (None, 0) and statuses and not any(
        s in (TestStatus.FAILED, TestStatus.ERROR) for s in statuses.values()
    ):
        run.tamper_flags.append("exit_code_mismatch")
        run.error = f"the test command exited {run.exit_code} but its output reports no failure"
        statuses = {t: TestStatus.ERROR for t in statuses}
    run.statuses = statuses
    if not run.statuses and not run.error:
        run.error = "no test results found in the output"
    return run


def prepare_hidden_tests(env, task, model_paths: list[str]) -> tuple[list[str], str]:
    """Restore tampered test files, then apply the test patch.

    Returns (tests_touched, error); error is empty when the test patch applied.
    """
    touched = tampered_test_files(env, model_paths)
    restored = list(dict.fromkeys([*touched, *touched_paths(task.test_patch)]))
    if not task.test_patch.strip():
        restore_from_base(env, restored)
        return touched, ""
    applied = _restore_and_apply_test_patch(env, restored, task.test_patch, new_nonce())
    return touched, "" if applied else "the test patch did not apply"


def _restore_and_apply_test_patch(env, restored: list[str], patch: str, nonce: str) -> bool:
    """One round trip: `restored` back to base, the test patch staged outside the
    repository and applied with `git apply`, else with `patch`."""
    folder = f"/tmp/swerve-patch-{nonce}"
    q = shlex.quote(f"{folder}/test.diff")
    text = patch if patch.endswith("\n") else patch + "\n"
    lines = [
        f"cd {shlex.quote(_workdir(env))} || exit 1",
        *_restore_lines(env, restored),
        f"mkdir -m 700 -p {folder} && printf '%s' {ansi_c_quote(text)} > {q} || exit 1",
        f"{{ git apply --whitespace=nowarn {q} || patch --batch --forward -p1 --no-backup-if-mismatch "
        f"--reject-file=- -i {q}; }} > /dev/null 2>&1 && echo SWERVE-TEST-PATCH-{nonce}=applied",
        f"rm -rf {folder}",  # the hidden tests never stay behind (a local or scratch /tmp is the host's)
    ]
    result = env.exec("\n".join(lines), timeout=300)
    return f"SWERVE-TEST-PATCH-{nonce}=applied" in result.output


def run_hidden_tests(env, task, *, timeout: float, reruns: int = 0, nonce: str | None = None,
                     model_paths: list[str] = ()) -> TestRun:
    """Run the task's tests (test patch already applied) and collect per-test statuses.

    `model_paths` (the files the model patch touched) tells the pytest bootstrap
    which files the patch added, so it can refuse a runner loaded from one."""
    nonce = nonce or new_nonce()
    if task.eval_script and task.log_parser:
        return run_eval_script(env, task, timeout=timeout, nonce=nonce)
    if not uses_pytest(task):
        parser = task.log_parser or logparsers.parser_for_repo(task.repo, default="unittest")
        run = _run_stdout(env, task, stdout_runner_script(task, _workdir(env)), nonce, timeout, parser)
        run.output = official_log(run.output, *_default_markers(nonce), exit_code=run.exit_code, command=run.command)
        return run
    targets = pytest_targets(task)
    added = added_paths(env, list(model_paths))
    canaries = [] if _stops_early(task) else plant_canaries(env, targets, workdir=_workdir(env))
    run = _run_pytest(env, task, targets, nonce, timeout, "junit", canaries=canaries, added=added)
    if reruns and run.statuses and not run.error:
        _rerun_failures(env, task, run, reruns, nonce, timeout, canaries=canaries, added=added)
    run.output = official_log(run.output, *_default_markers(nonce), exit_code=run.exit_code, command=run.command)
    return run


def run_pytest_on(env, task, targets: list[str], *, timeout: float, bytecode_cache: str = "",
                  server: PytestServer | None = None) -> TestRun:
    """pytest on `targets` (all tests when empty) through the same bootstrap, flags and
    JUnit reading as the hidden tests, without a test patch or canaries: for the task
    factory's runs of a source's own suite, where no patch is hostile. `bytecode_cache`:
    see `run_env_prefix`; `server`: the environment's pytest server (`open_pytest_server`),
    which then runs it in a child of its own instead of a new interpreter."""
    nonce = new_nonce()
    run = _run_pytest(env, task, list(targets), nonce, timeout, "junit", bytecode_cache=bytecode_cache,
                      server=server)
    run.output = official_log(run.output, *_default_markers(nonce), exit_code=run.exit_code, command=run.command)
    return run


def open_pytest_server(env, task, bytecode_cache: str = "") -> PytestServer | None:
    """The environment's pytest server for `task`'s runs on `bytecode_cache` (see
    swerve.harness.pytest_server); None when runs must start their own interpreter. Only
    for environments that host no agent and run no patch (the task factory's)."""
    return start_pytest_server(env, workdir=_workdir(env), env_prefix=run_env_prefix(task, bytecode_cache),
                               command=pytest_command(task, junit_path="/dev/null", targets=[]))


def _stops_early(task) -> bool:
    """The test command stops at the first failure (`-x`, `--maxfail`): a must-fail
    canary would stop it, so such runs get no canaries."""
    try:
        words = shlex.split(task.test_cmd or "")
    except ValueError:
        return False

    def short_flags_with_x(word: str) -> bool:
        return (word.startswith("-") and not word.startswith(("--", "-r", "-k", "-m", "-p", "-o", "-W"))
                and word[1:].isalpha() and "x" in word[1:])

    return any(w in ("--exitfirst",) or w.startswith("--maxfail") or short_flags_with_x(w) for w in words)


def pytest_targets(task) -> list[str]:
    """What pytest runs: the row's test directives (SWE-bench rows: the test patch's
    files); else the files of the graded tests; else the test patch's .py files."""
    if task.test_directives:
        return list(task.test_directives)
    targets = _files_of([*task.FAIL_TO_PASS, *task.PASS_TO_PASS])
    return targets or [p for p in touched_paths(task.test_patch) if p.endswith(".py")]


def stdout_runner_script(task, workdir: str) -> str:
    """A runner without JUnit (sympy's bin/test, Django's runtests.py, unittest): the
    row's eval_commands, then its test command with its test directives appended."""
    directives = " ".join(shlex.quote(d) for d in task.test_directives)
    lines = [f"cd {shlex.quote(workdir)}", *task.eval_commands, f"cd {shlex.quote(workdir)}",
             f"{task.test_cmd} {directives}".strip()]
    return "\n".join(lines) + "\n"


def _rerun_failures(env, task, run: TestRun, reruns: int, nonce: str, timeout: float, *,
                    canaries: list[Canary] = (), added: list[str] = ()) -> None:
    """Re-run failing graded tests (with their modules' canaries, so a re-run is
    checked like the first run); a test that passes on a re-run is marked flaky
    (and counted as passed) so a flip is never silent."""
    graded = set(task.FAIL_TO_PASS) | set(task.PASS_TO_PASS)
    for attempt in range(1, reruns + 1):
        failing = [t for t, s in run.statuses.items() if t in graded and s in (TestStatus.FAILED, TestStatus.ERROR)]
        if not failing:
            return
        modules = {test.split("::", 1)[0] for test in failing}
        checks = [canary for canary in canaries if canary.module in modules]
        targets = [*failing, *(node for canary in checks for node in canary.node_ids())]
        again = _run_pytest(env, task, targets, nonce, timeout, f"rerun{attempt}", canaries=checks, added=added)
        for flag in again.tamper_flags:
            if flag not in run.tamper_flags:
                run.tamper_flags.append(flag)
        if again.error:
            return
        for test in failing:
            if again.statuses.get(test) is TestStatus.PASSED:
                run.statuses[test] = TestStatus.PASSED
                run.flaky_tests.append(test)
        run.output += f"\n\n===== swerve re-run {attempt} of {len(failing)} failing test(s) =====\n{again.output}"


def nonced_eval_script(script: str, nonce: str) -> tuple[str, str, str]:
    """SWE-bench's eval script with its fixed output markers replaced by nonce-carrying
    ones, so the code under test cannot print a fake end marker and fake results."""
    start, end = f">>>>> Start Test Output {nonce}", f">>>>> End Test Output {nonce}"
    return script.replace(SWEBENCH_START, start).replace(SWEBENCH_END, end), start, end


def run_eval_script(env, task, *, timeout: float, nonce: str) -> TestRun:
    """SWE-bench 5.x rows: their own eval script, parsed with their own log parser."""
    script, start, end = nonced_eval_script(task.eval_script, nonce)
    run = _run_stdout(env, task, script, nonce, timeout, task.log_parser, markers=(start, end))
    run.output = official_log(run.output, start, end)
    return run


def apply_model_patch(env, patch: str, *, timeout: float = 300):
    """Apply the model patch with fallbacks; the staging file lives outside the repo."""
    return apply_patch(env, patch, workdir=_workdir(env), patch_file=f"/tmp/swerve-patch-{new_nonce()}/model.diff", timeout=timeout)
