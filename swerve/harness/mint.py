"""The task factory: mint validated SWE-bench-style tasks from a repository with a
working test suite. `mint_tasks` runs five named stages:

1. `open_source`: the source is fetched and prepared; `read_progress` reads what an
   earlier run with the same output already wrote or rejected (a re-run resumes).
2. `start_baseline`: the source's environment is built and its whole suite runs once
   (JUnit results); a suite that does not run, or where fewer than 80% of the tests
   pass, is refused with the reason. Then, unless `select_tests` is off, the suite runs
   once more under a call probe that records which functions each test starts
   (swerve.harness.call_map).
3. `generate_candidates` (mutations.py) yields candidate bugs in seed order.
4. Testing (swerve.harness.candidate_verdicts), in one warm environment per worker
   with `reset()` between candidates, each with a sealed bytecode cache made by its
   first runs (swerve.harness.bytecode_cache) and a pytest server that runs each test run
   in a child of its own (swerve.harness.pytest_server): a candidate is first tried on the tests that
   start its function, and one that makes a test fail is confirmed by the whole suite,
   so verdicts are the whole suite's. Kept: at least one passing test now fails
   (FAIL_TO_PASS), at least one still passes (PASS_TO_PASS), a second run agrees.
5. `finish_candidate`: base_patch turns the source into the buggy base and removes the
   FAIL_TO_PASS tests' definitions from their files (hidden tests, as in SWE-bench);
   test_patch brings them back; patch is the fix; base_commit is what `prepare_repo`
   makes of source + base_patch. The evaluator must resolve the gold patch and must
   not resolve a no-op patch (`check_task`); then the row is appended (a torn last
   line is repaired on the next run).

Every rejection is a typed `Rejection` (the test verdict, the evaluator's refusal, or
infrastructure trouble, which is not remembered so a later run retries it).
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import Parser
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from swerve.fileio import append_jsonl, atomic_write_text, iter_jsonl
from swerve.harness.warm_runs import WarmRuns, open_warm_runs, settle_warm_runs, warm_up
from swerve.harness.timeouts import MINT_SUITE_TIMEOUT_S
from swerve.harness.candidate_verdicts import (
    MintError,
    CandidateOutcome,
    RunScope,
    Verdict,
    baseline_passing,
    test_candidate,
)
from swerve.harness.mutations import KINDS, Candidate, generate_candidates, unified_diff
from swerve.harness.problem_statement import write_problem_statement
from swerve.paths import cache_dir
from swerve.schema import FailureClass, Prediction, Task

if TYPE_CHECKING:
    from swerve.harness.call_map import CallMap

P2P_FROM_HIDDEN_FILES = 25
P2P_FROM_OTHER_FILES = 25
NOOP_PATH = "SWERVE_NOOP.txt"
Log = Callable[[str], None]


class RejectionKind(str, Enum):
    """Why a candidate was not written."""

    TESTS = "tests"
    VALIDATION = "validation"
    INFRA = "infra"


@dataclass(frozen=True)
class Rejection:
    """A candidate's rejection. `label` is what the report counts (the test verdict,
    "validation" or "infra"); infrastructure trouble is not final, so a later run
    tests the candidate again."""

    kind: RejectionKind
    detail: str
    verdict: Verdict | None = None

    @property
    def final(self) -> bool:
        return self.kind is not RejectionKind.INFRA

    @property
    def label(self) -> str:
        return self.verdict.value if self.verdict is not None else self.kind.value

    def describe(self) -> str:
        return self.label if self.verdict is not None else f"{self.kind.value}: {self.detail}"


@dataclass(frozen=True)
class TaskCheck:
    """The evaluator's check of a built row: empty `problem` when it passed."""

    problem: str = ""
    infra: bool = False

    def __bool__(self) -> bool:
        return not self.problem


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
    map_time_s: float = 0.0
    runs_by_scope: Counter = field(default_factory=Counter)

    @property
    def candidates_per_min(self) -> float:
        return self.candidates_tested / (self.test_time_s / 60) if self.test_time_s else 0.0

    def _scopes(self) -> str:
        names = {RunScope.NONE: "no test starts the function", RunScope.SELECTED: "rejected on the selected tests",
                 RunScope.FULL: "decided by the whole suite"}
        return ", ".join(f"{names[scope]}: {self.runs_by_scope[scope]}" for scope in RunScope if self.runs_by_scope[scope])

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in self.rejected.most_common())
        return (
            f"{self.source}: {len(self.accepted)} new task(s) written to {self.out} "
            f"({self.previously_minted} already there); {self.candidates_tested} candidate(s) tested"
            + (f" ({self._scopes()})" if self.runs_by_scope else "")
            + (f"; rejected: {reasons}" if reasons else "")
        )


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
    outcome: CandidateOutcome,
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


def check_task(task: Task, *, backend: str, timeout: float, output_dir: Path) -> TaskCheck:
    """The evaluator must resolve the gold patch and must not resolve a no-op one.

    The no-op patch adds an unrelated file, so the hidden tests really run on the
    buggy base (the evaluator short-cuts a truly empty patch without running them).
    """
    from swerve.harness.evaluate import evaluate
    from swerve.harness.outcomes import ErrorKind

    noop = creation_diff(NOOP_PATH, "no change\n")
    predictions = {
        "gold": Prediction(instance_id=task.instance_id, model_name_or_path="gold", model_patch=task.patch),
        "noop": Prediction(instance_id=task.instance_id, model_name_or_path="noop", model_patch=noop),
    }
    verdicts = {}
    for name, prediction in predictions.items():
        report = evaluate([task], {task.instance_id: prediction}, run_id=f"{task.instance_id}-{name}",
                          output_dir=output_dir, workers=1, timeout=timeout, backend=backend)
        failure = report.failures.get(task.instance_id)
        if failure is not None:  # a row the evaluator cannot take is final; infrastructure or harness trouble is retried
            return TaskCheck(f"{name} evaluation failed: {failure.text}", infra=failure.kind is not ErrorKind.BAD_TASK)
        verdicts[name] = report.grades[task.instance_id]
    gold = verdicts["gold"]
    if not gold.resolved:
        return TaskCheck(f"gold patch does not resolve ({gold.failure_reason or gold.failure_class.value})",
                         infra=gold.failure_class is FailureClass.INFRA)
    if verdicts["noop"].resolved:
        return TaskCheck("the unfixed base already passes the hidden tests")
    return TaskCheck()


def validate_task(task: Task, *, backend: str, timeout: float, output_dir: Path) -> str:
    """'' when the evaluator resolves the gold patch and not a no-op one, else why not."""
    return check_task(task, backend=backend, timeout=timeout, output_dir=output_dir).problem


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


@dataclass
class MintSource:
    """The prepared source: its Task (whose environment is the warm one) and naming."""

    base: Task
    path: Path
    version: str
    package: str
    prefix: str


@dataclass
class Progress:
    """What earlier runs with the same output left: ids taken, rows from this source,
    candidates already written or finally rejected."""

    taken: set[str]
    previously_minted: int
    done_keys: set[str]
    state: Path


@dataclass
class Baseline:
    """The unmutated suite: its passing tests, and which test starts which function
    (None when selection is off or the map could not be made; `map_note` says why)."""

    passing: list[str]
    total: int
    call_map: CallMap | None = None
    map_s: float = 0.0
    map_note: str = ""
    runs: WarmRuns = field(default_factory=WarmRuns)  # how the first environment's runs start


def open_source(source: str, test_requirements: Iterable[str] | None = None) -> MintSource:
    """Fetch and prepare `source`; MintError (one line) when it cannot be minted."""
    from swerve.environments.sources import prepare_repo
    from swerve.errors import InfraError

    base = source_task(source)
    if test_requirements:
        base.test_requirements = list(test_requirements)
    try:
        prepared = prepare_repo(base)
    except InfraError as exc:
        raise MintError(f"{source}: {_one_line(exc).removeprefix(base.instance_id + ': ')}") from None
    base.repo = _repo_from_metadata(prepared.path, base.repo)
    version = prepared.version or prepared.source_commit[:12]
    if not _has_tests(prepared.path):
        raise MintError(f"{source}: no test files (test_*.py or *_test.py) in the source; mint from a source that ships its tests")
    return MintSource(base=base, path=prepared.path, version=version,
                      package=prepared.name or base.repo.split("/")[-1],
                      prefix=f"{base.repo.replace('/', '__')}-{version}")


def read_progress(out: Path, repo_source: str) -> Progress:
    rows = read_minted(out)
    mine = [row for row in rows if row.get("repo_source") == repo_source]
    done = {(row.get("mint") or {}).get("candidate") for row in mine}
    state = _state_file(out, repo_source)
    if state.exists():
        done |= {row.get("candidate") for _, row in iter_jsonl(state)}
    return Progress(taken={row.get("instance_id", "") for row in rows}, previously_minted=len(mine),
                    done_keys=done, state=state)


def start_baseline(env, base: Task, *, timeout: float, source: str, select_tests: bool, say: Log,
                   serve: bool = True) -> Baseline:
    """The baseline run, then (with `select_tests`) the call map; a map that cannot be
    made leaves every candidate to the whole suite, and says so. Both runs are the
    environment's first (swerve.harness.warm_runs): they fill its bytecode cache, through
    its pytest server with `serve`; the cache is sealed before the reset that follows."""
    from swerve.errors import InfraError
    from swerve.harness.call_map import CallMapError, map_calls

    try:
        opened = open_warm_runs(env, base, serve=serve)
        passing, total = baseline_passing(env, base, timeout, source, opened.bytecode_cache, opened.server)
    except InfraError as exc:
        raise MintError(f"{source}: {_one_line(exc)}") from None
    say(f"baseline: {len(passing)} of {total} tests pass")
    baseline = Baseline(passing=passing, total=total)
    started = time.monotonic()
    if select_tests:
        try:
            call_map = map_calls(env, base, timeout=timeout, bytecode_cache=opened.bytecode_cache,
                                 server=opened.server)
            unmapped = call_map.unmapped(passing)
            if unmapped:
                raise CallMapError(f"{len(unmapped)} passing test(s) missing from it, e.g. {unmapped[0]}")
            if not call_map.library_files():
                raise CallMapError("it saw no library function run")
            baseline.call_map = call_map
        except (CallMapError, InfraError) as exc:
            baseline.map_note = f"no call map ({_one_line(exc)}); every candidate runs the whole suite"
    try:
        baseline.runs = settle_warm_runs(env, base, opened)
    except InfraError as exc:
        raise MintError(f"{source}: {_one_line(exc)}") from None
    if not select_tests:
        return baseline
    baseline.map_s = time.monotonic() - started
    say(baseline.map_note or f"call map: {len(baseline.call_map.callers)} function(s) started by tests "
                             f"({baseline.map_s:.1f}s)")
    return baseline


class _MintRun:
    """One run's shared state: the candidate stream, the budget, the report; worker
    threads test candidates (`work`), a pool builds and checks the kept ones (`finish`)."""

    def __init__(self, src: MintSource, progress: Progress, baseline: Baseline, report: MintReport, *,
                 candidates: Iterator[Candidate], wanted: int, budget: int, out: Path, backend: str,
                 timeout: float, validate: bool, writer, seed: int, say: Log, workers: int, serve: bool = True) -> None:
        self.src, self.progress, self.baseline, self.report = src, progress, baseline, report
        self.candidates, self.wanted, self.budget, self.out = candidates, wanted, budget, out
        self.backend, self.timeout, self.validate, self.writer, self.seed, self.say = (
            backend, timeout, validate, writer, seed, say)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.exhausted = threading.Event()
        self.validations: list[Future] = []
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="swerve-mint-validate")
        self.broken: list[str] = []
        self.serve = serve
        self.warm: dict[int, WarmRuns] = {0: baseline.runs}  # per slot; a slot without one warms it first

    def next_candidate(self) -> Candidate | None:
        with self.lock:
            if self.stop.is_set() or self.report.candidates_tested >= self.budget:
                return None
            in_flight = len(self.report.accepted) + sum(1 for f in self.validations if not f.done())
            if in_flight >= self.wanted:
                return None
            candidate = next(self.candidates, None)
            if candidate is None:
                self.exhausted.set()
            else:
                self.report.candidates_tested += 1
            return candidate

    def reject(self, candidate: Candidate, rejection: Rejection) -> None:
        """Count it; remember a final rejection so a resumed run skips the candidate."""
        with self.lock:
            self.report.rejected[rejection.label] += 1
            if rejection.final:
                append_jsonl(self.progress.state, {"candidate": candidate.key, "verdict": "rejected",
                                                   "reason": rejection.describe()})

    def finished(self) -> bool:
        return (self.stop.is_set() or self.exhausted.is_set() or len(self.report.accepted) >= self.wanted
                or self.report.candidates_tested >= self.budget)

    def work(self, envs: list, slot: int, reopen: Callable[[], object]) -> None:
        """Test candidates in `envs[slot]` until there are none; a broken environment is
        replaced (its candidate counts as infra trouble), four failures in a row stop the run."""
        from swerve.errors import InfraError

        failures = 0
        while not self.stop.is_set():
            candidate = self.next_candidate()
            if candidate is None:
                return
            try:
                if slot not in self.warm:
                    self.warm[slot] = warm_up(envs[slot], self.src.base, timeout=self.timeout, serve=self.serve)
                runs = self.warm[slot]
                outcome = test_candidate(envs[slot], self.src.base, candidate, self.baseline.passing, self.timeout,
                                         call_map=self.baseline.call_map, bytecode_cache=runs.bytecode_cache,
                                         server=runs.server)
                failures = 0
            except Exception as exc:  # the environment broke: replace it, retry later
                failures += 1
                self.reject(candidate, Rejection(RejectionKind.INFRA, _one_line(exc)))
                envs[slot].close()
                self.warm.pop(slot, None)
                try:
                    if failures > 3:
                        raise InfraError(f"{failures} environment failures in a row; last: {_one_line(exc)}")
                    envs[slot] = reopen()
                except Exception as again:
                    self.broken.append(_one_line(again))
                    self.stop.set()
                    return
                continue
            with self.lock:
                self.report.test_time_s += outcome.seconds
                self.report.runs_by_scope[outcome.tests_run] += 1
            scope = f", {outcome.selected} selected test(s)" if outcome.tests_run is RunScope.SELECTED else ""
            self.say(f"  tested {candidate.kind} in {candidate.file}:{candidate.qualname}: {outcome.verdict.value} "
                     f"({outcome.seconds:.1f}s{scope})")
            if outcome.verdict is not Verdict.OK:
                self.reject(candidate, Rejection(RejectionKind.TESTS, outcome.verdict.value, verdict=outcome.verdict))
                continue
            with self.lock:
                instance_id = _next_id(self.src.prefix, self.progress.taken)
                self.progress.taken.add(instance_id)
                self.validations.append(self.pool.submit(self.finish, candidate, outcome, instance_id))

    def finish(self, candidate: Candidate, outcome: CandidateOutcome, instance_id: str) -> None:
        result = finish_candidate(self.src, candidate, outcome, instance_id, backend=self.backend,
                                  timeout=self.timeout, validate=self.validate, writer=self.writer, seed=self.seed)
        if isinstance(result, Rejection):
            self.say(f"  {candidate.kind} in {candidate.file}:{candidate.qualname} rejected: {result.detail}")
            self.reject(candidate, result)
            return
        with self.lock:
            if len(self.report.accepted) >= self.wanted:
                return
            append_jsonl(self.out, result.model_dump(mode="json"))
            self.report.accepted.append(result.instance_id)
        self.say(f"  wrote {result.instance_id} ({candidate.kind}, {len(result.FAIL_TO_PASS)} FAIL_TO_PASS)")


def finish_candidate(src: MintSource, candidate: Candidate, outcome: CandidateOutcome, instance_id: str, *,
                     backend: str, timeout: float, validate: bool, writer=None, seed: int = 0) -> Task | Rejection:
    """The row for a kept candidate, checked by the evaluator; or why it is not written."""
    try:
        task = build_task(src.base, candidate, outcome, instance_id=instance_id, repo_path=src.path,
                          version=src.version, package=src.package, seed=seed, writer=writer)
    except Exception as exc:  # one bad candidate never stops the run
        return Rejection(RejectionKind.INFRA, f"task build failed: {_one_line(exc)}")
    if not validate:
        return task
    try:
        check = check_task(task, backend=backend, timeout=timeout, output_dir=cache_dir("mint") / "validate")
    except Exception as exc:
        return Rejection(RejectionKind.INFRA, f"validation failed: {_one_line(exc)}")
    if check.problem:
        return Rejection(RejectionKind.INFRA if check.infra else RejectionKind.VALIDATION, check.problem)
    return task


def mint_tasks(
    source: str,
    out: Path | str,
    *,
    max_tasks: int = 10,
    seed: int = 0,
    workers: int = 1,
    kinds: Iterable[str] | None = None,
    backend: str = "auto",
    timeout: float = MINT_SUITE_TIMEOUT_S,
    include: Iterable[str] | None = None,
    max_candidates: int | None = None,
    validate: bool = True,
    writer: Callable[[str], str] | None = None,
    log: Log | None = None,
    test_requirements: Iterable[str] | None = None,
    select_tests: bool = True,
    pytest_server: bool = True,
) -> MintReport:
    """Mint up to `max_tasks` tasks from `source` into the JSONL file `out`.

    `max_tasks` counts rows from this source already in `out` (a re-run resumes).
    `include` restricts mutations to files matching these globs; `max_candidates`
    bounds how many candidates are tested (default 40 per wanted task);
    `test_requirements` replaces the default ["pytest"] (e.g. "pytest<8" for an
    older suite) and is carried into every row; `workers` warm environments test
    candidates in parallel; `select_tests=False` runs the whole suite for every
    candidate instead of screening it on the tests that start its function first;
    `pytest_server=False` starts a new interpreter for every test run instead of forking
    one that imported pytest once (swerve.harness.pytest_server).
    Raises MintError (one line: source, reason, fix) for a source that cannot be minted.
    """
    from swerve.environments import Limits, open_environment
    from swerve.errors import InfraError

    say = log or (lambda message: None)
    started = time.monotonic()
    out = Path(out)
    kinds = list(kinds or KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise MintError(f"unknown mutation kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    src = open_source(source, test_requirements)
    base = src.base
    report = MintReport(source=base.repo_source, out=out, repo=base.repo, version=src.version)
    progress = read_progress(out, base.repo_source)
    report.previously_minted = progress.previously_minted
    wanted = max_tasks - progress.previously_minted
    if wanted <= 0:
        say(f"{out} already holds {progress.previously_minted} task(s) from {base.repo_source}; nothing to do")
        report.elapsed_s = time.monotonic() - started
        return report

    limits = Limits(exec_timeout_s=timeout + 60)

    def reopen():
        return open_environment(base, backend, limits, run_id="mint")

    say(f"{base.repo_source}: building the environment and running the baseline suite")
    try:
        env0 = reopen()
    except InfraError as exc:
        raise MintError(f"{source}: the environment could not be built: {_one_line(exc)}") from None
    envs = [env0]
    warmed: dict[int, WarmRuns] = {}
    # the other workers' environments open and warm their bytecode caches during the baseline
    opener = ThreadPoolExecutor(max_workers=max(1, workers - 1), thread_name_prefix="swerve-mint-open")
    opening = [opener.submit(_open_warm, reopen, base, timeout, pytest_server) for _ in range(max(1, workers) - 1)]
    try:
        baseline = start_baseline(env0, base, timeout=timeout, source=source, select_tests=select_tests, say=say,
                                  serve=pytest_server)
        report.baseline_total, report.baseline_passed = baseline.total, len(baseline.passing)
        report.map_time_s = baseline.map_s
        for future in opening:
            env, warmed[len(envs)] = future.result()
            envs.append(env)
        candidates = (c for c in generate_candidates(src.path, seed=seed, kinds=kinds, include=include)
                      if c.key not in progress.done_keys)
        run = _MintRun(src, progress, baseline, report, candidates=candidates, wanted=wanted,
                       budget=max_candidates if max_candidates is not None else 40 * wanted, out=out,
                       backend=backend, timeout=timeout, validate=validate, writer=writer, seed=seed, say=say,
                       workers=workers, serve=pytest_server)
        run.warm.update(warmed)
        _run_workers(run, envs, reopen)
    finally:
        opener.shutdown(wait=True)
        for future in opening:  # opened while the baseline failed
            if not future.exception() and future.result()[0] not in envs:
                future.result()[0].close()
        for env in envs:
            env.close()
    report.elapsed_s = time.monotonic() - started
    if run.broken:
        raise MintError(
            f"{source}: the environment failed and could not be replaced ({run.broken[0]}); "
            f"{len(report.accepted)} task(s) written this run are kept in {out}; run again to resume"
        )
    if not report.accepted and report.previously_minted == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in report.rejected.most_common()) or "no candidates"
        raise MintError(
            f"{source}: seed {seed} produced no valid bug among {report.candidates_tested} candidate(s) ({reasons}); "
            "try another --seed, more --kinds or a larger --max-candidates"
        )
    return report


def _open_warm(reopen: Callable[[], object], base: Task, timeout: float, serve: bool) -> tuple[object, WarmRuns]:
    """A new environment, its sealed bytecode cache and (with `serve`) its pytest server."""
    env = reopen()
    try:
        return env, warm_up(env, base, timeout=timeout, serve=serve)
    except BaseException:
        env.close()
        raise


def _run_workers(run: _MintRun, envs: list, reopen: Callable[[], object]) -> None:
    """One thread per environment until the run is finished; validations in flight
    finish before the next round (they may free a wanted slot). Ctrl-C or SIGTERM stops
    testing; validations in flight still finish."""
    try:
        while True:
            threads = [threading.Thread(target=run.work, args=(envs, slot, reopen), daemon=True)
                       for slot in range(len(envs))]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(timeout=0.5)
            for future in list(run.validations):
                future.result()
            if run.finished():
                break
    except BaseException:
        run.stop.set()
        raise
    finally:
        run.pool.shutdown(wait=not run.stop.is_set(), cancel_futures=run.stop.is_set())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] if text else type(exc).__name__
