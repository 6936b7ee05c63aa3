"""Choosing one patch per task among many attempts: `swerve select RUN --strategy S`.

Strategies (combine with commas; earlier ones decide, later ones break ties, the
earliest attempt breaks what is left):

- `tests`: each candidate's patch is split into its source change and its test files.
  In a fresh environment at the base commit the source change is applied and the
  repository's own visible test suite runs (the task's test command with no test
  names); a candidate that breaks a test passing at the base commit loses, one that
  does not apply loses most. Then the reproduction tests every attempt wrote (test
  files its patch adds or changes) run against every candidate's source change and
  against the unpatched base (cross-validation, as CodeT and Agentless do): a check
  that fails at the base reproduces the issue, and a candidate scores one for each
  such check it passes (`repro`, the second key). The hidden tests are not in that
  environment and never run.
- `consensus`: group candidates by their normalised source diff (changed lines,
  whitespace and hunk positions ignored; test files left out); the largest group wins.
  When `tests` ran too, candidates that behave alike (the same failing visible tests
  and reproduction checks) add to each other's weight as a second key.
- `judge:SPEC`: a policy (any model spec: `openai:...`, `hf:...`, `vllm:...`) scores
  each candidate 0-10 from the issue, the diff and a summary of its trajectory.

The selector is blind by construction: it receives a `TaskView` (instance id,
repository, issue text, hints, test command) that has no gold patch, no test patch, no
FAIL_TO_PASS / PASS_TO_PASS and none of the minting notes; candidates carry the patch,
the exit status and the actions taken, never a grade. Environments come from a
caller-given opener that builds the same base-commit environment the agent worked in.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swerve.schema import Task, Trajectory

STRATEGIES = ("tests", "consensus", "judge")
HIDDEN_FIELDS = ("patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS", "eval_script", "test_directives",
                 "base_patch", "difficulty")
JUNIT_PREFIX = "/tmp/swerve-select-junit-"
"""Each test run's JUnit file gets its own name below it: local and scratch environments
share the host's /tmp, and `select --workers N` scores N tasks at once."""
APPLY_FAILED = -10**9
REPRO_TIMEOUT_S = 120.0
TEST_DIRS = ("tests", "test", "testing")
REPRO_PREFIX = "test_swerve_repro_"


@dataclass(frozen=True)
class TaskView:
    """What a selector may know about a task."""

    instance_id: str
    repo: str
    problem_statement: str
    hints_text: str
    test_cmd: str


def task_view(task: Task) -> TaskView:
    return TaskView(instance_id=task.instance_id, repo=task.repo, problem_statement=task.problem_statement,
                    hints_text=task.hints_text, test_cmd=task.test_cmd)


def assert_blind(view: Any, secrets_of: Task | None = None) -> None:
    """Refuse anything but a TaskView; with the task, also check no hidden text leaked into it."""
    if not isinstance(view, TaskView):
        raise TypeError(f"a selector gets a TaskView, not {type(view).__name__}")
    for name in HIDDEN_FIELDS:
        if hasattr(view, name):
            raise AssertionError(f"TaskView exposes {name}")
    if secrets_of is not None:
        text = "\n".join(str(value) for value in view.__dict__.values())
        for name in ("patch", "test_patch"):
            hidden = getattr(secrets_of, name).strip()
            if hidden and hidden in text:
                raise AssertionError(f"the {name} of {secrets_of.instance_id} is in its TaskView")


@dataclass
class Candidate:
    """One attempt's patch as a selector sees it (no grade, no manifest)."""

    instance_id: str
    attempt: int
    patch: str
    exit_status: str
    actions: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    behaviour: frozenset[str] | None = None

    @property
    def key(self) -> str:
        return normalised_diff(split_patch(self.patch)[0])

    @property
    def source_patch(self) -> str:
        return split_patch(self.patch)[0]

    @property
    def test_patch(self) -> str:
        """The candidate's own test files (its reproduction tests), as a diff."""
        return split_patch(self.patch)[1]


def candidate_from(trajectory: Trajectory, attempt: int) -> Candidate:
    actions = []
    for step in trajectory.steps:
        if step.action is not None:
            arguments = step.action.arguments
            detail = arguments.get("command", "")
            if step.action.name == "str_replace_editor":
                detail = f"{arguments.get('command', '')} {arguments.get('path', '')}"
            actions.append(f"{step.action.name}: {str(detail).splitlines()[0][:120] if detail else ''} -> exit {step.exit_code}")
    return Candidate(instance_id=trajectory.instance_id, attempt=attempt, patch=trajectory.final_patch,
                     exit_status=trajectory.exit_status, actions=actions)


def normalised_diff(patch: str) -> str:
    """The diff's meaning without its noise: per file, the removed and added lines with
    whitespace collapsed, in order; hunk headers, context and blank changes dropped."""
    out: list[str] = []
    for line in patch.splitlines():
        if line.startswith("+++ "):
            out.append("FILE " + re.sub(r"^b/", "", line[4:].strip()))
        elif line.startswith(("---", "diff ", "index ", "@@")):
            continue
        elif line[:1] in "+-" and line[1:].strip():
            out.append(line[0] + " ".join(line[1:].split()))
    return "\n".join(out)


def is_test_path(path: str) -> bool:
    """A test file or test support file: test_*.py / *_test.py / conftest.py, or anything
    under a tests/test/testing folder."""
    parts = path.strip("/").split("/")
    name = parts[-1]
    return (name.startswith("test_") and name.endswith(".py")) or name.endswith("_test.py") \
        or name == "conftest.py" or any(part in TEST_DIRS for part in parts[:-1])


def _file_sections(patch: str) -> list[tuple[str, str]]:
    """(path, text) per file of a unified diff, in order (git or plain headers)."""
    sections: list[tuple[str, list[str]]] = []
    pending: list[str] = []
    lines = patch.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("diff --git "):
            pending = [line]
        elif line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ "):
            target = lines[index + 1][4:].strip().split("\t")[0]
            source = line[4:].strip().split("\t")[0]
            path = target if target != "/dev/null" else source
            path = re.sub(r"^[ab]/", "", path)
            sections.append((path, [*pending, line, lines[index + 1]]))
            pending = []
            index += 2
            continue
        elif sections and not pending:
            sections[-1][1].append(line)
        else:
            pending.append(line)
        index += 1
    return [(path, "".join(text)) for path, text in sections]


def split_patch(patch: str) -> tuple[str, str]:
    """(source change, test files) of a candidate patch."""
    source, tests = [], []
    for path, text in _file_sections(patch or ""):
        (tests if is_test_path(path) else source).append(text)
    return "".join(source), "".join(tests)


@dataclass(frozen=True)
class ReproductionFile:
    """A test file an attempt added, as the selector runs it: its folder, original name
    and full text."""

    folder: str
    name: str
    text: str


def reproduction_files(test_patch: str) -> list[ReproductionFile]:
    """The test modules (test_*.py / *_test.py) a candidate's test diff adds. Changes to
    existing test files are not used: the visible suite runs from the base commit."""
    found = []
    for path, text in _file_sections(test_patch):
        name = path.rsplit("/", 1)[-1]
        if not (name.startswith("test_") or name.endswith("_test.py")) or not name.endswith(".py"):
            continue
        if "\n--- /dev/null" not in "\n" + text:
            continue
        body = [line[1:] for line in text.splitlines(keepends=True)[1:]
                if line.startswith("+") and not line.startswith("+++ ")]
        found.append(ReproductionFile(path.rsplit("/", 1)[0] if "/" in path else "", name, "".join(body)))
    return found


# --- the strategies --------------------------------------------------------------------

def parse_strategy(text: str) -> list[str]:
    """`tests,judge:openai:m` -> ["tests", "judge:openai:m"]; unknown names refused."""
    parts: list[str] = []
    for raw in re.split(r",(?=\s*(?:tests|consensus|judge)\b)", text or ""):
        part = raw.strip()
        if not part:
            continue
        name = part.split(":", 1)[0]
        if name not in STRATEGIES or (name == "judge" and not part.partition(":")[2]):
            raise ValueError(f"--strategy {text!r}: {part!r} is not a strategy; use tests, consensus, judge:SPEC "
                             "or a comma-separated combination")
        parts.append(part)
    if not parts:
        raise ValueError("--strategy is empty; use tests, consensus, judge:SPEC or a combination")
    return parts


def score_with_tests(view: TaskView, candidates: list[Candidate], open_env: Callable[[], Any],
                     timeout: float = 600.0) -> None:
    """Run the visible suite at the base commit and with each distinct source change,
    then every attempt's reproduction tests on the base and on each source change. Sets
    scores["tests"] = -(visible tests broken), scores["repro"] = reproduction checks
    passed (of those failing at the base), and the failing set as `behaviour`."""
    assert_blind(view)
    by_key: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_key.setdefault(candidate.key, []).append(candidate)
    bundles = list(dict.fromkeys(tuple(reproduction_files(c.test_patch)) for c in candidates))
    files = [(index, f) for index, bundle in enumerate(b for b in bundles if b) for f in bundle]
    with open_env() as env:
        base_failed, base_ran = _visible_failures(env, view, timeout)
        repro_failed, repro_ran = _reproduction_failures(env, view, files, timeout) if files else (set(), set())
        checks = repro_failed & repro_ran
        for group in by_key.values():
            env.reset()
            source = group[0].source_patch
            if not source.strip():
                failed, ran = base_failed, base_ran
                own_failed, own_ran = repro_failed, repro_ran
            else:
                failed, ran = _with_patch(env, view, source, timeout)
                own_failed, own_ran = (_reproduction_failures(env, view, files, timeout)
                                       if failed is not None and checks else (set(), set()))
            for candidate in group:
                if failed is None:
                    candidate.scores["tests"] = APPLY_FAILED
                    candidate.scores["repro"] = 0
                    candidate.behaviour = frozenset({"<does not apply>"})
                    continue
                broken = (failed - base_failed) | (base_ran - ran - base_failed)
                passed = {check for check in checks if check in own_ran and check not in own_failed}
                candidate.scores["tests"] = -len(broken)
                candidate.scores["repro"] = len(passed)
                candidate.behaviour = frozenset(failed) | frozenset(f"repro:{c}" for c in checks - passed)


def _reproduction_failures(env: Any, view: TaskView, files: list[tuple[int, ReproductionFile]],
                           timeout: float) -> tuple[set[str], set[str]]:
    """(failing, ran) checks of the attempts' reproduction tests in the environment's
    current state. Each file is written beside its original under a unique name (so
    equal names from different attempts do not collide) and all run in one pytest call."""
    paths = []
    for index, found in files:
        path = f"{found.folder}/{REPRO_PREFIX}{index}__{found.name}" if found.folder else \
            f"{REPRO_PREFIX}{index}__{found.name}"
        env.write_file(path, found.text)
        paths.append(path)
    failed, ran = _visible_failures(env, view, min(timeout, REPRO_TIMEOUT_S), targets=paths,
                                    extra="--continue-on-collection-errors")
    env.exec("rm -f " + " ".join(shlex.quote(path) for path in paths), timeout=60)
    return failed, ran


def _with_patch(env: Any, view: TaskView, patch: str, timeout: float) -> tuple[set[str] | None, set[str]]:
    marker = f"SWERVE_SELECT_{secrets.token_hex(6)}"
    body = patch if patch.endswith("\n") else patch + "\n"
    applied = env.exec(f"git apply --whitespace=nowarn - <<'{marker}'\n{body}{marker}", timeout=60)
    if applied.exit_code != 0:
        return None, set()
    return _visible_failures(env, view, timeout)


def _visible_failures(env: Any, view: TaskView, timeout: float, targets: list[str] | None = None,
                      extra: str = "") -> tuple[set[str], set[str]]:
    """(failing tests, tests that ran) of the visible suite (or of `targets`), from a JUnit
    file outside the repo."""
    command = view.test_cmd.strip() or "python -m pytest -q"
    named = " ".join(shlex.quote(target) for target in targets or [])
    junit = f"{JUNIT_PREFIX}{secrets.token_hex(8)}.xml"
    env.exec(f"{command} {named} {extra} -p no:cacheprovider --junitxml={junit} >/dev/null 2>&1; true",
             timeout=timeout)
    shown = env.exec(f"cat {junit} 2>/dev/null && rm -f {junit}", timeout=60)
    return parse_junit(shown.output if shown.exit_code == 0 else "")


def parse_junit(xml_text: str) -> tuple[set[str], set[str]]:
    """(failed, ran) test ids; an unreadable report counts as one failing pseudo-test."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return {"<no test report>"}, set()
    failed, ran = set(), set()
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("skipped") is not None:
            continue
        ran.add(name)
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(name)
    return failed, ran


def score_with_consensus(candidates: list[Candidate]) -> None:
    """scores["consensus"] = size of the candidate's normalised source-diff group (test
    files left out; no source change scores 0); with behaviour
    known, scores["behaviour"] = size of its same-behaviour group."""
    changed = [c for c in candidates if c.key.strip()]
    sizes = Counter(c.key for c in changed)
    behaviours = Counter(c.behaviour for c in changed if c.behaviour is not None)
    for candidate in candidates:
        candidate.scores["consensus"] = sizes.get(candidate.key, 0) if candidate.key.strip() else 0
        if candidate.behaviour is not None:
            candidate.scores["behaviour"] = behaviours.get(candidate.behaviour, 0) if candidate.key.strip() else 0


JUDGE_PROMPT = """You review candidate fixes for a software issue. Rate how likely this patch resolves \
the issue without breaking anything, from 0 (certainly not) to 10 (certainly). Answer with the rating \
inside <score></score>, e.g. <score>7</score>.

Repository: {repo}

Issue:
{issue}

What the agent did:
{actions}
It ended with: {exit_status}

The patch:
```diff
{patch}
```"""


def judge_messages(view: TaskView, candidate: Candidate, max_patch_chars: int = 12000) -> list[dict[str, Any]]:
    assert_blind(view)
    actions = "\n".join(f"- {a}" for a in candidate.actions[-30:]) or "- (no actions)"
    prompt = JUDGE_PROMPT.format(repo=view.repo, issue=view.problem_statement.strip(), actions=actions,
                                 exit_status=candidate.exit_status, patch=candidate.patch[:max_patch_chars])
    return [{"role": "user", "content": prompt}]


def score_with_judge(view: TaskView, candidates: list[Candidate], judge: Any) -> None:
    """scores["judge"] = the judge's 0-10 rating (0 when it gives none); identical patches
    are judged once."""
    ratings: dict[str, float] = {}
    for candidate in candidates:
        if not candidate.patch.strip():
            candidate.scores["judge"] = 0.0
            continue
        if candidate.key not in ratings:
            completion = judge.act(judge_messages(view, candidate), [])
            ratings[candidate.key] = parse_rating(completion.text)
        candidate.scores["judge"] = ratings[candidate.key]


def make_judge(spec: str) -> Any:
    """The judge policy of `judge:SPEC`: any model spec (openai:, hf:, vllm:, with their
    options) or `noop`. Scripted policies built per task (oracle, replay) are refused:
    they are made from the task row, which holds the gold patch and the hidden tests."""
    from swerve.agents.policies import SCRIPTED_KINDS, make_policy
    from swerve.agents.policies.spec import parse_policy_spec

    kind = parse_policy_spec(spec).kind
    if kind in SCRIPTED_KINDS and kind != "noop":
        raise ValueError(f"--strategy judge:{spec}: {kind} is built from the task row (gold patch, hidden tests) "
                         "and cannot judge blind; give a model spec such as judge:hf:tiny or "
                         "judge:openai:MODEL@http://HOST:PORT/v1")
    return make_policy(spec)


def parse_rating(text: str) -> float:
    match = re.search(r"<score>\s*(\d+(?:\.\d+)?)\s*</score>", text or "")
    return min(10.0, float(match.group(1))) if match else 0.0


def choose(candidates: list[Candidate], strategy: list[str]) -> Candidate:
    """The best candidate by the strategies' scores in order, then the earliest attempt."""
    keys: list[str] = []
    for part in strategy:
        name = part.split(":", 1)[0]
        keys.append(name)
        if name == "tests":
            keys.append("repro")
        if name == "consensus" and any(c.behaviour is not None for c in candidates):
            keys.append("behaviour")
    return min(candidates, key=lambda c: ([-c.scores.get(k, 0.0) for k in keys], c.attempt))


@dataclass
class Selection:
    instance_id: str
    attempt: int
    patch: str
    scores: dict[str, float]
    candidates: int
    candidate_scores: dict[int, dict[str, float]] = field(default_factory=dict)


def select_for_task(view: TaskView, candidates: list[Candidate], strategy: list[str], *,
                    open_env: Callable[[], Any] | None = None, judge: Any = None) -> Selection:
    """Score `candidates` of one task with each strategy and pick one."""
    assert_blind(view)
    if not candidates:
        raise ValueError(f"{view.instance_id}: no attempts to select from")
    names = [part.split(":", 1)[0] for part in strategy]
    if "tests" in names:
        if open_env is None:
            raise ValueError("the tests strategy needs an environment opener")
        score_with_tests(view, candidates, open_env)
    if "consensus" in names:
        score_with_consensus(candidates)
    if "judge" in names:
        if judge is None:
            raise ValueError("the judge strategy needs a judge policy")
        score_with_judge(view, candidates, judge)
    best = choose(candidates, strategy)
    return Selection(instance_id=view.instance_id, attempt=best.attempt, patch=best.patch,
                     scores=dict(best.scores), candidates=len(candidates),
                     candidate_scores={c.attempt: dict(c.scores) for c in candidates})


# --- a run folder ----------------------------------------------------------------------

def load_candidates(run_dir: str | Path) -> dict[str, list[Candidate]]:
    """Instance id -> one Candidate per attempt, from RUN/attempts/*/trajectories.jsonl."""
    from swerve.agents.trajectory import read_trajectories

    run = Path(run_dir)
    out: dict[str, list[Candidate]] = {}
    for manifest in sorted((run / "attempts").glob("*/run.json")):
        attempt = json.loads(manifest.read_text()).get("attempt")
        if attempt is None:
            continue
        for trajectory in read_trajectories(manifest.parent / "trajectories.jsonl"):
            out.setdefault(trajectory.instance_id, []).append(candidate_from(trajectory, int(attempt)))
    if not out:
        raise ValueError(f"{run} has no attempts; run `swerve run --attempts N --out {run}` first")
    return {iid: sorted(found, key=lambda c: c.attempt) for iid, found in out.items()}


def strategy_file_name(strategy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", strategy.replace(",", "+")).strip("_") or "selection"


def select_run(run_dir: str | Path, tasks: list[Task], strategy: str, *, out_path: str | Path | None = None,
               backend: str = "auto", judge: Any = None, open_env: Callable[[Task], Any] | None = None,
               model_name: str | None = None, progress: Callable[[str], None] | None = None,
               workers: int = 1) -> dict[str, Any]:
    """Select one patch per task of a multi-attempt run; write predictions (with an
    `attempt` field per row) to out_path (default RUN/selections/STRATEGY.jsonl) and
    timings beside them. `workers` tasks are scored at once (each in its own
    environment). Returns the summary written there."""
    from concurrent.futures import ThreadPoolExecutor

    from swerve.fileio import atomic_write_json, write_jsonl

    if workers < 1:
        raise ValueError(f"--workers {workers}: give 1 or more")
    parts = parse_strategy(strategy)
    if any(p.startswith("judge") for p in parts) and judge is None:
        judge = make_judge(next(p for p in parts if p.startswith("judge")).partition(":")[2])
    if open_env is None:
        from swerve.environments import open_environment

        def open_env(task: Task):
            return open_environment(task, backend, None, f"select-{Path(run_dir).resolve().name}")
    run = Path(run_dir)
    candidates = load_candidates(run)
    by_id = {task.instance_id: task for task in tasks}
    missing = sorted(set(candidates) - set(by_id))
    if missing:
        raise ValueError(f"--tasks lacks {len(missing)} instance(s) of the run, e.g. {missing[0]}; give the run's task file")
    started = time.monotonic()

    def select_one(instance_id: str) -> dict[str, Any]:
        task = by_id[instance_id]
        view = task_view(task)
        assert_blind(view, secrets_of=task)
        found = candidates[instance_id]
        chosen = select_for_task(view, found, parts, open_env=lambda: open_env(task), judge=judge)
        if progress is not None:
            progress(f"{instance_id}: attempt {chosen.attempt} {chosen.scores}")
        return {"instance_id": instance_id, "model_name_or_path": model_name or f"select:{strategy}",
                "model_patch": chosen.patch, "attempt": chosen.attempt, "strategy": strategy,
                "scores": chosen.scores, "candidates": chosen.candidates,
                "candidate_scores": {str(a): sc for a, sc in chosen.candidate_scores.items()}}

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(select_one, sorted(candidates)))
    seconds = time.monotonic() - started
    path = Path(out_path) if out_path else run / "selections" / f"{strategy_file_name(strategy)}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, rows)
    summary = {"strategy": strategy, "predictions": str(path), "tasks": len(rows), "seconds": seconds,
               "picked_attempts": {row["instance_id"]: row["attempt"] for row in rows}}
    atomic_write_json(path.with_suffix(".json"), summary)
    return summary
