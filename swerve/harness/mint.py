"""The task factory: mint validated SWE-bench-style tasks from a repository with a
working test suite.

1. Baseline: the source's environment is built and its whole suite runs once
   (JUnit results); a suite that does not run, or where fewer than 80% of the
   tests pass, is refused with the reason.
2. Candidate bugs (mutations.py) are tested one after the other in a warm
   environment: write the mutated file, run the suite, `reset()` — no new
   container per candidate. A candidate is kept when at least one passing test
   now fails (FAIL_TO_PASS), at least one still passes (PASS_TO_PASS), and a
   second run gives the same failures.
3. The task: base_patch turns the source into the buggy base and removes the
   FAIL_TO_PASS tests' definitions from their files (hidden tests, as in
   SWE-bench); test_patch brings them back; patch is the fix; base_commit is what `prepare_repo` makes of
   source + base_patch. Before a row is written the evaluator must resolve the
   gold patch and must not resolve a no-op patch.
4. Rows are appended one at a time (a torn last line is repaired on the next
   run); re-running with the same output resumes, skipping every candidate
   already written or rejected.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from swerve.errors import SwerveError
from swerve.fileio import append_jsonl, atomic_write_text, iter_jsonl
from swerve.harness.mutations import KINDS, Candidate, generate_candidates, unified_diff
from swerve.harness.problem_statement import write_problem_statement
from swerve.paths import cache_dir
from swerve.schema import Prediction, Task, TestStatus

MIN_BASELINE_PASS_RATE = 0.8
P2P_FROM_HIDDEN_FILES = 25
P2P_FROM_OTHER_FILES = 25
NOOP_PATH = "SWERVE_NOOP.txt"
Log = Callable[[str], None]


class MintError(SwerveError):
    """Minting could not proceed; the message names the source and what to do."""


@dataclass
class MintReport:
    """What a mint run did."""

    source: str
    out: Path
    repo: str = ""
    version: str = ""
    baseline_total: int = 0
    baseline_passed: int = 0
    candidates_tested: int = 0
    accepted: list[str] = field(default_factory=list)
    previously_minted: int = 0
    rejected: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    test_time_s: float = 0.0

    @property
    def candidates_per_min(self) -> float:
        return self.candidates_tested / (self.test_time_s / 60) if self.test_time_s else 0.0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in self.rejected.most_common())
        return (
            f"{self.source}: {len(self.accepted)} new task(s) written to {self.out} "
            f"({self.previously_minted} already there); {self.candidates_tested} candidate(s) tested"
            + (f"; rejected: {reasons}" if reasons else "")
        )


@dataclass
class Outcome:
    """One candidate's test result against the baseline."""

    verdict: str
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------ sources


def source_task(source: str) -> Task:
    """The Task describing the unmutated source (its environment is the warm one)."""
    spec = source.strip()
    if not spec:
        raise MintError("--source is empty; pass pypi:NAME==VERSION, a git URL or a path")
    if spec.startswith("pypi:"):
        from swerve.environments.sources import parse_pypi_spec

        parsed = parse_pypi_spec(spec)
        if parsed is None:
            raise MintError(f"--source {spec!r} is not of the form pypi:NAME==VERSION (a pinned version is required)")
        name, version = parsed
        repo = f"{name}/{name}"
        ident = f"{_slug(name)}-{version}"
    elif "://" in spec or spec.startswith("git@"):
        tail = re.sub(r"\.git$", "", spec.rstrip("/")).replace(":", "/").split("/")
        repo = "/".join(tail[-2:])
        ident = _slug(tail[-1])
    else:
        path = Path(spec).expanduser()
        if not path.is_dir():
            raise MintError(f"--source {spec!r}: no such folder; pass pypi:NAME==VERSION, a git URL or an existing path")
        spec = str(path.resolve())
        repo = f"local/{path.resolve().name}"
        ident = _slug(path.resolve().name)
    return Task(instance_id=f"mint-source-{ident}", repo=repo, repo_source=spec)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _repo_from_metadata(repo_path: Path, fallback: str) -> str:
    """owner/name from the sdist's PKG-INFO when it names a GitHub project."""
    info = repo_path / "PKG-INFO"
    if not info.is_file():
        return fallback
    meta = Parser().parsestr(info.read_text(errors="replace"))
    urls = [meta.get("Home-page") or ""] + [u.split(",", 1)[-1] for u in meta.get_all("Project-URL") or []]
    for url in urls:
        match = re.search(r"github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?(?:/|$)", url.strip())
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    return fallback


def _has_tests(repo_path: Path) -> bool:
    for path in repo_path.rglob("*.py"):
        name = path.name
        if name.startswith("test_") or name.endswith("_test.py"):
            return True
    return False


# ------------------------------------------------------------------ testing


def run_suite(env, task: Task, timeout: float):
    """The whole suite, results from JUnit (the evaluator's hidden-test runner, no targets)."""
    from swerve.harness import hidden_tests as hidden

    return hidden.run_hidden_tests(env, task, timeout=timeout)


def _passes(status: TestStatus | None) -> bool:
    return status is not None and status.counts_as_pass


def baseline_passing(env, task: Task, timeout: float, source: str) -> tuple[list[str], int]:
    """Tests passing on the unmutated source; MintError when the suite does not run
    or fewer than 80% pass."""
    run = run_suite(env, task, timeout)
    statuses = run.statuses
    if run.timed_out:
        raise MintError(f"{source}: the test suite did not finish within {timeout:.0f}s; raise --timeout")
    if not statuses:
        reason = run.error or f"pytest exited {run.exit_code} and reported no tests"
        tail = " | ".join(line.strip() for line in run.output.strip().splitlines()[-3:] if line.strip())[-300:]
        raise MintError(f"{source}: the test suite does not run ({reason}; {tail}); mint from a source whose tests pass")
    counted = {t: s for t, s in statuses.items() if s is not TestStatus.SKIPPED}
    passing = sorted(t for t, s in counted.items() if _passes(s) and "::" in t)
    rate = len(passing) / len(counted) if counted else 0.0
    uncollected = sorted(t for t, s in counted.items() if "::" not in t and not _passes(s))
    if rate < MIN_BASELINE_PASS_RATE and uncollected:
        raise MintError(
            f"{source}: the test suite does not collect ({len(uncollected)} file(s) fail to import, e.g. "
            f"{uncollected[0]}); pin a test runner it supports (--test-requirement 'pytest<8') or mint another version"
        )
    if rate < MIN_BASELINE_PASS_RATE:
        raise MintError(
            f"{source}: only {len(passing)} of {len(counted)} tests pass ({rate:.0%} < "
            f"{MIN_BASELINE_PASS_RATE:.0%}); mint from a version whose test suite passes"
        )
    return passing, len(counted)


def test_candidate(env, task: Task, candidate: Candidate, passing: list[str], timeout: float) -> Outcome:
    """Apply the candidate in the warm environment, run the suite twice, reset."""
    started = time.monotonic()
    try:
        env.write_file(candidate.file, candidate.mutated_source)
        first = run_suite(env, task, timeout)
        outcome = _classify(first, passing)
        if outcome.verdict == "ok":
            second = run_suite(env, task, timeout)
            again = _classify(second, passing)
            if again.verdict != "ok" or set(again.fail_to_pass) != set(outcome.fail_to_pass):
                outcome = Outcome(verdict="unstable")
    finally:
        env.reset()
    outcome.seconds = time.monotonic() - started
    return outcome


def _classify(run, passing: list[str]) -> Outcome:
    if run.timed_out:
        return Outcome(verdict="timeout")
    if not run.statuses:
        return Outcome(verdict="suite_broken")
    missing = [t for t in passing if t not in run.statuses]
    if missing:
        return Outcome(verdict="tests_not_collected")
    f2p = [t for t in passing if run.statuses[t] in (TestStatus.FAILED, TestStatus.ERROR)]
    p2p = [t for t in passing if _passes(run.statuses[t])]
    if not f2p:
        return Outcome(verdict="no_failing_test")
    if not p2p:
        return Outcome(verdict="no_passing_test")
    return Outcome(verdict="ok", fail_to_pass=f2p, pass_to_pass=p2p, output=run.output)


# ------------------------------------------------------------------ rows


def _file_of(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def creation_diff(path: str, text: str) -> str:
    """A diff that creates `path` holding `text`."""
    lines = text.splitlines(keepends=True)
    body = "".join("+" + line for line in lines)
    if lines and not lines[-1].endswith("\n"):
        body += "\n\\ No newline at end of file\n"
    hunk = f"@@ -0,0 +1,{len(lines)} @@\n" if lines else ""
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n{hunk}{body}"


def _test_key(test_id: str) -> tuple[str, ...]:
    """('Class', 'test_name') for `file.py::Class::test_name[param]`."""
    parts = test_id.split("::")[1:]
    return tuple(parts[:-1]) + (parts[-1].split("[", 1)[0],) if parts else ()


def _definition_spans(text: str, keys: set[tuple[str, ...]]) -> tuple[list[tuple[int, int]], set[tuple[str, ...]]]:
    """Line spans (0-based, end exclusive, decorators included) of the test functions
    named by `keys`, and which keys were found. A class whose every statement
    would go is removed whole, so no class is left without a body."""
    tree = ast.parse(text)
    found: set[tuple[str, ...]] = set()

    def span(node) -> tuple[int, int]:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return first - 1, node.end_lineno

    def walk(body, scope: tuple[str, ...]) -> list[tuple[int, int]]:
        spans = []
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and scope + (node.name,) in keys:
                found.add(scope + (node.name,))
                spans.append(span(node))
            elif isinstance(node, ast.ClassDef):
                inner = walk(node.body, scope + (node.name,))
                if inner and len(inner) == len(node.body):
                    spans.append(span(node))
                else:
                    spans.extend(inner)
        return spans

    return walk(tree.body, ()), found


def hide_tests(text: str, test_ids: list[str]) -> str:
    """The test file without the definitions of `test_ids` (SWE-bench's hidden tests:
    the test patch brings them back). When a test is not defined in the file itself
    (inherited, generated), the whole file's content is hidden instead."""
    keys = {_test_key(t) for t in test_ids}
    try:
        spans, found = _definition_spans(text, keys)
    except SyntaxError:
        return ""
    if found != keys:
        return ""
    lines = text.splitlines(keepends=True)
    drop = set()
    for start, end in spans:
        drop.update(range(start, end))
    return "".join(line for number, line in enumerate(lines) if number not in drop)


def visible_tests(text: str, test_ids: list[str]) -> list[str]:
    """Those of `test_ids` whose definition is present in `text`."""
    try:
        _, found = _definition_spans(text, {_test_key(t) for t in test_ids})
    except SyntaxError:
        return []
    return [t for t in test_ids if _test_key(t) in found]


def sample_pass_to_pass(p2p: list[str], hidden_files: set[str], key: str) -> list[str]:
    """A bounded, deterministic sample: tests from the hidden files, plus others."""
    rng = random.Random(key)
    near = [t for t in p2p if _file_of(t) in hidden_files]
    far = [t for t in p2p if _file_of(t) not in hidden_files]
    picked = rng.sample(near, min(len(near), P2P_FROM_HIDDEN_FILES)) + rng.sample(far, min(len(far), P2P_FROM_OTHER_FILES))
    order = {t: i for i, t in enumerate(p2p)}
    return sorted(picked, key=order.__getitem__)


def build_task(
    base: Task,
    candidate: Candidate,
    outcome: Outcome,
    *,
    instance_id: str,
    repo_path: Path,
    version: str,
    package: str,
    seed: int,
    writer: Callable[[str], str] | None = None,
) -> Task:
    """The SWE-bench row for an accepted candidate; base_commit via prepare_repo."""
    from swerve.environments.sources import prepare_repo

    hidden_files = sorted({_file_of(t) for t in outcome.fail_to_pass})
    texts = {path: (repo_path / path).read_text(encoding="utf-8") for path in hidden_files}
    stripped = {
        path: hide_tests(texts[path], [t for t in outcome.fail_to_pass if _file_of(t) == path]) for path in hidden_files
    }
    base_patch = candidate.bug_diff + "".join(unified_diff(p, texts[p], stripped[p]) for p in hidden_files)
    test_patch = "".join(unified_diff(p, stripped[p], texts[p]) for p in hidden_files)
    statement = write_problem_statement(
        outcome.output, outcome.fail_to_pass, package=package, version=version, fix_diff=candidate.fix_diff, writer=writer,
        test_sources=texts,
    )
    row = Task(
        instance_id=instance_id,
        repo=base.repo,
        patch=candidate.fix_diff,
        test_patch=test_patch,
        problem_statement=statement,
        version=version,
        FAIL_TO_PASS=outcome.fail_to_pass,
        PASS_TO_PASS=sample_pass_to_pass(outcome.pass_to_pass, set(hidden_files), candidate.key),
        repo_source=base.repo_source,
        base_patch=base_patch,
        install_cmd=base.install_cmd,
        test_cmd=base.test_cmd,
        test_requirements=base.test_requirements,
        pytest_plugins=base.pytest_plugins,
        difficulty={
            "lines_changed": candidate.lines_changed,
            "n_fail_to_pass": len(outcome.fail_to_pass),
            "mutation_kind": candidate.kind,
        },
        mint={"candidate": candidate.key, "file": candidate.file, "function": candidate.qualname, "seed": seed},
    )
    prepared = prepare_repo(row)
    row.base_commit = prepared.base_commit
    if row.source_kind == "git":
        row.source_commit = prepared.source_commit
    return row


def validate_task(task: Task, *, backend: str, timeout: float, output_dir: Path) -> str:
    """'' when the evaluator resolves the gold patch and not a no-op one, else why not.

    The no-op patch adds an unrelated file, so the hidden tests really run on the
    buggy base (the evaluator short-cuts a truly empty patch without running them).
    """
    from swerve.harness.evaluate import evaluate

    noop = creation_diff(NOOP_PATH, "no change\n")
    predictions = {
        "gold": Prediction(instance_id=task.instance_id, model_name_or_path="gold", model_patch=task.patch),
        "noop": Prediction(instance_id=task.instance_id, model_name_or_path="noop", model_patch=noop),
    }
    verdicts = {}
    for name, prediction in predictions.items():
        report = evaluate([task], {task.instance_id: prediction}, run_id=f"{task.instance_id}-{name}",
                          output_dir=output_dir, workers=1, timeout=timeout, backend=backend)
        if task.instance_id in report.errors:
            return f"{name} evaluation failed: {report.errors[task.instance_id]}"
        verdicts[name] = report.grades[task.instance_id]
    if not verdicts["gold"].resolved:
        return f"gold patch does not resolve ({verdicts['gold'].failure_reason or verdicts['gold'].failure_class.value})"
    if verdicts["noop"].resolved:
        return "the unfixed base already passes the hidden tests"
    return ""


def hidden_from_base(task: Task) -> list[str]:
    """FAIL_TO_PASS tests that are (wrongly) defined at the task's base commit."""
    from swerve.environments.sources import prepare_repo

    repo = prepare_repo(task)
    visible = []
    for path in sorted({_file_of(t) for t in task.FAIL_TO_PASS}):
        file = repo.path / path
        if file.is_file():
            visible += visible_tests(file.read_text(errors="replace"), [t for t in task.FAIL_TO_PASS if _file_of(t) == path])
    return visible


# ------------------------------------------------------------------ output


def _state_file(out: Path, source: str) -> Path:
    key = hashlib.sha256(f"{out.resolve()}\0{source}".encode()).hexdigest()[:16]
    return cache_dir("mint") / f"state-{key}.jsonl"


def read_minted(out: Path) -> list[dict]:
    """Rows already in `out`; a torn last line (a killed run) is dropped and the file repaired."""
    if not out.exists():
        return []
    rows = [row for _, row in iter_jsonl(out)]
    text = out.read_text(encoding="utf-8")
    torn = bool(text) and not text.endswith("\n")
    if torn or sum(1 for line in text.splitlines() if line.strip()) != len(rows):
        atomic_write_text(out, "".join(json.dumps(row) + "\n" for row in rows))
    return rows


def _next_id(prefix: str, taken: set[str]) -> str:
    number = 1
    while f"{prefix}-m{number:04d}" in taken:
        number += 1
    return f"{prefix}-m{number:04d}"


# ------------------------------------------------------------------ the run


def mint_tasks(
    source: str,
    out: Path | str,
    *,
    max_tasks: int = 10,
    seed: int = 0,
    workers: int = 1,
    kinds: Iterable[str] | None = None,
    backend: str = "auto",
    timeout: float = 300,
    include: Iterable[str] | None = None,
    max_candidates: int | None = None,
    validate: bool = True,
    writer: Callable[[str], str] | None = None,
    log: Log | None = None,
    test_requirements: Iterable[str] | None = None,
) -> MintReport:
    """Mint up to `max_tasks` tasks from `source` into the JSONL file `out`.

    `max_tasks` counts rows from this source already in `out` (a re-run resumes).
    `include` restricts mutations to files matching these globs; `max_candidates`
    bounds how many candidates are tested (default 40 per wanted task);
    `test_requirements` replaces the default ["pytest"] (e.g. "pytest<8" for an
    older suite) and is carried into every row. Raises
    MintError (one line: source, reason, fix) for a source that cannot be minted.
    """
    from swerve.environments import Limits, open_environment
    from swerve.environments.sources import prepare_repo
    from swerve.errors import InfraError

    say = log or (lambda message: None)
    started = time.monotonic()
    out = Path(out)
    kinds = list(kinds or KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise MintError(f"unknown mutation kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    base = source_task(source)
    if test_requirements:
        base.test_requirements = list(test_requirements)
    try:
        prepared = prepare_repo(base)
    except InfraError as exc:
        raise MintError(f"{source}: {_one_line(exc).removeprefix(base.instance_id + ': ')}") from None
    base.repo = _repo_from_metadata(prepared.path, base.repo)
    version = prepared.version or prepared.source_commit[:12]
    package = prepared.name or base.repo.split("/")[-1]
    prefix = f"{base.repo.replace('/', '__')}-{version}"
    report = MintReport(source=base.repo_source, out=out, repo=base.repo, version=version)
    if not _has_tests(prepared.path):
        raise MintError(f"{source}: no test files (test_*.py or *_test.py) in the source; mint from a source that ships its tests")

    rows = read_minted(out)
    taken = {row.get("instance_id", "") for row in rows}
    mine = [row for row in rows if row.get("repo_source") == base.repo_source]
    report.previously_minted = len(mine)
    done_keys = {(row.get("mint") or {}).get("candidate") for row in mine}
    state = _state_file(out, base.repo_source)
    if state.exists():
        done_keys |= {row.get("candidate") for _, row in iter_jsonl(state)}
    wanted = max_tasks - len(mine)
    if wanted <= 0:
        say(f"{out} already holds {len(mine)} task(s) from {base.repo_source}; nothing to do")
        report.elapsed_s = time.monotonic() - started
        return report
    budget = max_candidates if max_candidates is not None else 40 * wanted

    candidates = (c for c in generate_candidates(prepared.path, seed=seed, kinds=kinds, include=include) if c.key not in done_keys)
    lock = threading.Lock()
    stop = threading.Event()
    exhausted = threading.Event()
    validation_dir = cache_dir("mint") / "validate"
    limits = Limits(exec_timeout_s=timeout + 60)
    say(f"{base.repo_source}: building the environment and running the baseline suite")
    try:
        env0 = open_environment(base, backend, limits, run_id="mint")
    except InfraError as exc:
        raise MintError(f"{source}: the environment could not be built: {_one_line(exc)}") from None
    try:
        try:
            passing, total = baseline_passing(env0, base, timeout, source)
        except InfraError as exc:
            raise MintError(f"{source}: {_one_line(exc)}") from None
        report.baseline_total, report.baseline_passed = total, len(passing)
        say(f"baseline: {len(passing)} of {total} tests pass")
        envs = [env0] + [open_environment(base, backend, limits, run_id="mint") for _ in range(max(1, workers) - 1)]
        validations: list[Future] = []
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="swerve-mint-validate")

        def next_candidate() -> Candidate | None:
            with lock:
                if stop.is_set() or report.candidates_tested >= budget:
                    return None
                in_flight = len(report.accepted) + sum(1 for f in validations if not f.done())
                if in_flight >= wanted:
                    return None
                candidate = next(candidates, None)
                if candidate is None:
                    exhausted.set()
                else:
                    report.candidates_tested += 1
                return candidate

        def record_rejection(candidate: Candidate, reason: str, *, final: bool = True) -> None:
            """Remember a final verdict so a resumed run skips it; infra trouble is not final."""
            with lock:
                report.rejected[reason.split(" (")[0].split(":")[0]] += 1
                if final:
                    append_jsonl(state, {"candidate": candidate.key, "verdict": "rejected", "reason": reason})

        def finish(candidate: Candidate, outcome: Outcome, instance_id: str) -> None:
            try:
                task = build_task(base, candidate, outcome, instance_id=instance_id, repo_path=prepared.path,
                                  version=version, package=package, seed=seed, writer=writer)
                problem = validate_task(task, backend=backend, timeout=timeout, output_dir=validation_dir) if validate else ""
            except Exception as exc:  # one bad candidate never stops the run
                problem = f"task build failed: {_one_line(exc)}"
            if problem:
                say(f"  {candidate.kind} in {candidate.file}:{candidate.qualname} rejected: {problem}")
                infra = problem.startswith("task build failed") or "infra:" in problem or "harness error" in problem
                record_rejection(candidate, f"validation: {problem}", final=not infra)
                return
            with lock:
                if len(report.accepted) >= wanted:
                    return
                append_jsonl(out, task.model_dump(mode="json"))
                report.accepted.append(task.instance_id)
            say(f"  wrote {task.instance_id} ({candidate.kind}, {len(task.FAIL_TO_PASS)} FAIL_TO_PASS)")

        broken: list[str] = []

        def work(slot: int) -> None:
            failures = 0
            while not stop.is_set():
                candidate = next_candidate()
                if candidate is None:
                    return
                try:
                    outcome = test_candidate(envs[slot], base, candidate, passing, timeout)
                    failures = 0
                except Exception as exc:  # the environment broke: replace it, retry later
                    failures += 1
                    record_rejection(candidate, f"infra: {_one_line(exc)}", final=False)
                    envs[slot].close()
                    try:
                        if failures > 3:
                            raise InfraError(f"{failures} environment failures in a row; last: {_one_line(exc)}")
                        envs[slot] = open_environment(base, backend, limits, run_id="mint")
                    except Exception as again:
                        broken.append(_one_line(again))
                        stop.set()
                        return
                    continue
                with lock:
                    report.test_time_s += outcome.seconds
                say(f"  tested {candidate.kind} in {candidate.file}:{candidate.qualname}: {outcome.verdict} "
                    f"({outcome.seconds:.1f}s)")
                if outcome.verdict != "ok":
                    record_rejection(candidate, outcome.verdict)
                    continue
                with lock:
                    instance_id = _next_id(prefix, taken)
                    taken.add(instance_id)
                    validations.append(pool.submit(finish, candidate, outcome, instance_id))

        try:
            while True:
                threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(len(envs))]
                for thread in threads:
                    thread.start()
                while any(thread.is_alive() for thread in threads):
                    for thread in threads:
                        thread.join(timeout=0.5)
                for future in list(validations):
                    future.result()
                if stop.is_set() or exhausted.is_set() or len(report.accepted) >= wanted or report.candidates_tested >= budget:
                    break
        except BaseException:  # Ctrl-C, SIGTERM: stop testing; validations in flight still finish
            stop.set()
            raise
        finally:
            pool.shutdown(wait=not stop.is_set(), cancel_futures=stop.is_set())
            for env in envs:
                env.close()
    finally:
        env0.close()
    report.elapsed_s = time.monotonic() - started
    if broken:
        raise MintError(
            f"{source}: the environment failed and could not be replaced ({broken[0]}); "
            f"{len(report.accepted)} task(s) written this run are kept in {out}; run again to resume"
        )
    if not report.accepted and report.previously_minted == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in report.rejected.most_common()) or "no candidates"
        raise MintError(
            f"{source}: seed {seed} produced no valid bug among {report.candidates_tested} candidate(s) ({reasons}); "
            "try another --seed, more --kinds or a larger --max-candidates"
        )
    return report


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] if text else type(exc).__name__
