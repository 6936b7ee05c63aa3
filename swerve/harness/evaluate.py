"""`evaluate(tasks, predictions, ...)`: grade predictions in fresh environments, in
parallel, resumably, writing each instance's result atomically as it finishes.

Infra failures (an image that will not build, a daemon error) are retried a few
times and then reported as errors, never as the model's result; everything the
patch did (fail to apply, time out, break tests) is the model's and is labelled.

One instance (`evaluate_instance`): refuse what needs no environment (oversized,
empty, unsafe patches), then in a fresh environment apply the patch, prepare the
hidden tests, run them, and classify the run (`classify_test_run`). A run
(`evaluate`): schedule (reuse grades of unchanged patches, order the rest), grade
each instance with infra retries into a typed outcome (`swerve.harness.outcomes`),
write it (report.json or error.json), then the summary. Environments are opened
ahead and closed in the background by `swerve.harness.eval_scheduler`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import swerve
import swerve.environments
from swerve.errors import InfraError, TaskFormatError
from swerve.fileio import atomic_write_json, atomic_write_text, run_folder_lock
from swerve.runrecord import finish_run_record
from swerve.harness import hidden_tests as hidden
from swerve.harness.timeouts import TEST_RUN_TIMEOUT_S
from swerve.harness.abandon import reap_orphaned_containers
from swerve.harness.eval_scheduler import EnvironmentScheduler, close_quietly
from swerve.harness.flags import FORGERY_FLAGS, evidence_flags
from swerve.harness.grading import grade_statuses
from swerve.harness.patches import (
    check_patch,
    is_empty_patch,
    symlink_escapes_in_env,
    touched_paths,
)
from swerve.harness.hidden_tests import TestRun
from swerve.harness.outcomes import (
    Abandoned,
    ErrorKind,
    EvalError,
    EvaluationStopped,
    Graded,
    NotGraded,
    Outcome,
)
from swerve.interrupts import stoppable
from swerve.schema import FailureClass, Grade, Prediction, Task, TestStatus

HARNESS_VERSION = "swerve-eval-1"
INFRA_ATTEMPTS = 3
MAX_PATCH_BYTES = 5_000_000
"""Patches larger than this are refused before any environment starts (`--max-patch-bytes`)."""
_SUSPICIOUS_CODE = {
    "os._exit": "os._exit(",
    "pytest internals": "_pytest",
    "junit": "junitxml",
    "report hooks": "pytest_runtest_makereport",
    "report objects": "TestReport",
    "exit hooks": "atexit",
    "command line": "sys.argv",
    "harness paths": "swerve-results",
}


@dataclass
class RunReport:
    """What a run produced: per-instance grades, the instances not graded (`failures`,
    typed: see swerve.harness.outcomes), and the summary dict that is also written to
    RUN_DIR/summary.json."""

    run_id: str
    run_dir: Path
    grades: dict[str, Grade] = field(default_factory=dict)
    failures: dict[str, EvalError] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def errors(self) -> dict[str, str]:
        """The failures in their stored one-line form ("infra: ...")."""
        return {instance_id: error.text for instance_id, error in self.failures.items()}

    @property
    def resolved_ids(self) -> list[str]:
        return sorted(i for i, g in self.grades.items() if g.resolved)

    def failed(self, kind: ErrorKind) -> list[str]:
        """The instances not graded for this kind of reason."""
        return sorted(i for i, error in self.failures.items() if error.kind is kind)


def patch_key(task: Task, patch: str | None) -> str:
    """What decides a grade: the patch, the task's tests and environment, the harness."""
    fields = ("instance_id", "repo", "repo_source", "base_commit", "base_patch", "test_patch",
              "FAIL_TO_PASS", "PASS_TO_PASS", "test_cmd", "install_cmd", "eval_script", "log_parser", "image")
    payload = json.dumps(
        {"patch": patch, "task": {name: getattr(task, name) for name in fields}, "harness": HARNESS_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _suspicious(patch: str) -> list[str]:
    """Information flags (never verdicts, see swerve.harness.flags) for added code
    that mentions the test machinery: easy to dodge, and honest fixes to pytest
    itself trip them."""
    added = "\n".join(line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++"))
    flags = [f"suspicious_code:{name}" for name, needle in _SUSPICIOUS_CODE.items() if needle in added]
    if "<testsuite" in added or "<testcase" in added:
        flags.append("junit_lookalike_in_patch")
    return flags


def _trusted_statuses(statuses: Mapping[str, TestStatus], flags: list[str]) -> dict[str, TestStatus]:
    """The statuses to grade: as reported, unless an evidence flag (swerve.harness.flags)
    says the run was forged; then nothing that claims a pass counts."""
    if not evidence_flags(flags):
        return dict(statuses)
    return {test: (status if status in (TestStatus.FAILED, TestStatus.ERROR) else TestStatus.ERROR)
            for test, status in statuses.items()}


def patch_size(patch: str | None) -> int:
    return len(patch.encode("utf-8", errors="surrogatepass")) if patch else 0


def refuse_oversized_patch(grade: Grade, task: Task, patch: str | None, limit: int | None) -> bool:
    """Refuse (in `grade`) a patch over `limit` bytes: the model's result, not an infra
    error, and decided before any environment starts or any byte is copied into one."""
    size = patch_size(patch)
    if limit is None or size <= limit:
        return False
    grade.failure_class = FailureClass.PATCH_REFUSED
    grade.failure_reason = (f"patch refused: {size:,} bytes is over the {limit:,}-byte limit "
                            "(raise it with --max-patch-bytes if the patch is genuine)")
    grade.tamper_flags.append("oversized_patch")
    grade.tests_status = grade_statuses(task, {})[0]
    return True


_IMAGE_PYTHON: dict[str, dict[str, str]] = {}
"""The Python an image records, by image digest: one read per image and process."""


def _python_of(env, task: Task) -> dict[str, str]:
    """The image's Python (major.minor, as swerve's images record it) and where the row's
    environment came from, for the report; empty where the image does not say."""
    found = {"spec_source": task.spec_source} if task.spec_source else {}
    digest = getattr(getattr(env, "info", None), "image_digest", "") or ""
    if digest and digest in _IMAGE_PYTHON:
        return {**_IMAGE_PYTHON[digest], **found}
    try:
        version = env.read_file("/opt/swerve/python-version").strip()
    except (FileNotFoundError, OSError):
        return found
    recorded = {"python": version} if version[:1].isdigit() and len(version) < 16 else {}
    if digest:
        _IMAGE_PYTHON[digest] = recorded
    return {**recorded, **found}


class _InstanceFiles:
    """The files of one instance folder (nothing is written without a folder)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def text(self, name: str, text: str) -> None:
        if self.folder is not None:
            atomic_write_text(self.folder / name, text)

    def json(self, name: str, data) -> None:
        if self.folder is not None:
            atomic_write_json(self.folder / name, data)


def _not_resolved(grade: Grade, task: Task, failure: FailureClass, reason: str, flag: str | None = None) -> Grade:
    """Mark `grade` as the model's failure, with every graded test counted as failing."""
    grade.failure_class = failure
    grade.failure_reason = reason
    if flag is not None:
        grade.tamper_flags.append(flag)
    grade.tests_status = grade_statuses(task, {})[0]
    return grade


def _new_grade(task: Task, prediction: Prediction) -> Grade:
    patch = prediction.model_patch
    return Grade(
        instance_id=task.instance_id,
        patch_is_None=patch is None,
        patch_exists=not is_empty_patch(patch),
        patch_hash=patch_key(task, patch),
        model_name_or_path=prediction.model_name_or_path,
        test_source="",
        test_exit_code=None,
        environment={},
    )


def _refuse_without_environment(grade: Grade, task: Task, patch: str | None) -> tuple[bool, list[str]]:
    """The verdicts that need no test run: an empty patch, or one refused by its text
    (unsafe paths, not a diff). Returns (refused, paths): for a refusal, the paths whose
    base files to record (possibly none); else the paths the patch touches."""
    gold_paths = touched_paths(task.patch)
    if is_empty_patch(patch):
        _not_resolved(grade, task, FailureClass.EMPTY_PATCH, "the prediction has no patch")
        return True, gold_paths
    check = check_patch(patch)
    if check.ok:
        return False, check.paths
    reason = "patch refused: " + "; ".join(check.problems)
    malformed = "malformed" in reason or "not a diff" in reason
    _not_resolved(grade, task, FailureClass.PATCH_REFUSED, reason, "malformed_patch" if malformed else "unsafe_patch")
    return True, list(dict.fromkeys([*check.paths, *gold_paths]))


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise EvaluationStopped()


def evaluate_instance(
    task: Task,
    prediction: Prediction,
    *,
    run_id: str,
    timeout: float,
    backend: str = "auto",
    reruns: int = 0,
    limits=None,
    opener: Callable | None = None,
    instance_dir: Path | None = None,
    stop: threading.Event | None = None,
    closer: Callable | None = None,
    max_patch_bytes: int | None = MAX_PATCH_BYTES,
    test_slot: Callable[[], ContextManager] | None = None,
) -> Grade:
    """Grade one prediction in a fresh environment. Raises InfraError when the
    infrastructure failed (the caller retries); returns the model's Grade otherwise.
    A patch over `max_patch_bytes` (None: no limit) is refused without an environment.
    Raises TaskFormatError for a row that cannot be evaluated as given (no SWE-bench spec).
    `test_slot()`, when given, is held while the hidden tests run (and only then)."""
    if task.spec_error:
        raise TaskFormatError(task.spec_error)
    patch = prediction.model_patch
    grade = _new_grade(task, prediction)
    started = time.monotonic()
    close = closer or close_quietly
    opener = opener or swerve.environments.open_environment
    files = _InstanceFiles(instance_dir)
    if refuse_oversized_patch(grade, task, patch, max_patch_bytes):
        return grade
    files.text("patch.diff", patch or "")
    refused, paths = _refuse_without_environment(grade, task, patch)
    if refused:
        if instance_dir is not None and paths:
            _record_base_files_only(task, paths, backend, limits, run_id, opener, instance_dir, close)
        return grade
    grade.tamper_flags.extend(_suspicious(patch))

    env = opener(task, backend, limits, run_id)
    try:
        grade.durations["env_start_s"] = round(time.monotonic() - started, 3)
        _grade_in_environment(env, task, patch, paths, grade, files, timeout=timeout, reruns=reruns, stop=stop,
                              test_slot=test_slot or nullcontext)
        return grade
    finally:
        grade.durations["total_s"] = round(time.monotonic() - started, 3)
        close(env)


def _grade_in_environment(env, task: Task, patch: str, paths: list[str], grade: Grade, files: _InstanceFiles, *,
                          timeout: float, reruns: int, stop: threading.Event | None,
                          test_slot: Callable[[], ContextManager]) -> None:
    """The stages inside the environment: describe it, record the base files, apply the
    patch, prepare and run the hidden tests, classify the run. Each stage that ends the
    instance as the model's failure fills `grade` and returns False."""
    info = getattr(env, "info", None)
    if info is not None:
        grade.environment = {"backend": info.backend, "image": info.image, "image_digest": info.image_digest,
                             **_python_of(env, task)}
    _check_stop(stop)
    files.json("base_files.json", _read_base_files(env, list(dict.fromkeys([*paths, *touched_paths(task.patch)]))))
    if not _apply_stage(env, task, patch, paths, grade, files):
        return
    touched = _prepare_tests_stage(env, task, paths, grade)
    if touched is None:
        return
    _check_stop(stop)
    with test_slot():
        started = time.monotonic()
        run = hidden.run_hidden_tests(env, task, timeout=timeout, reruns=reruns, model_paths=paths)
        grade.durations["tests_s"] = round(time.monotonic() - started, 3)
    _check_stop(stop)
    files.text("test_output.txt", run.output)
    files.text("eval.sh", "#!/bin/bash\n" + run.command + "\n")
    classify_test_run(grade, task, run, touched)


def _apply_stage(env, task: Task, patch: str, paths: list[str], grade: Grade, files: _InstanceFiles) -> bool:
    """Apply the model patch, refusing it when a path it touches resolves outside the
    repository (checked before applying it and again after)."""
    if _refused_for_symlinks(env, task, grade, paths, "through a symlink already in the repository"):
        return False
    started = time.monotonic()
    applied = hidden.apply_model_patch(env, patch)
    grade.durations["apply_s"] = round(time.monotonic() - started, 3)
    if not applied.applied:
        last = applied.output.strip().splitlines()[-1][:300] if applied.output.strip() else ""
        if applied.malformed:
            _not_resolved(grade, task, FailureClass.PATCH_REFUSED, f"malformed diff: {last}" if last else
                          "patch did not apply", "malformed_patch")
        else:
            _not_resolved(grade, task, FailureClass.APPLY_FAILED, f"patch did not apply: {last}" if last else
                          "patch did not apply")
        files.text("test_output.txt", applied.output)
        return False
    grade.patch_successfully_applied = True
    grade.apply_method = applied.method
    return not _refused_for_symlinks(env, task, grade, paths, "through a symlink the patch created")


def _prepare_tests_stage(env, task: Task, paths: list[str], grade: Grade) -> list[str] | None:
    """Restore runner-shadowing and test files the patch touched, then apply the test
    patch. Returns the test files that were restored, or None when the test patch did
    not apply (the instance then ends as TEST_ERROR)."""
    for flag in hidden.restore_runner_files(env, paths):
        grade.tamper_flags.append(flag)
    if task.eval_script and task.log_parser:
        touched = hidden.tampered_test_files(env, paths)
        hidden.restore_from_base(env, touched)
        prep_error = ""
    else:
        touched, prep_error = hidden.prepare_hidden_tests(env, task, paths)
    grade.tests_touched = touched
    if touched:
        grade.tamper_flags.append("tests_touched")
    if prep_error:
        _not_resolved(grade, task, FailureClass.TEST_ERROR, prep_error)
        return None
    return touched


def classify_test_run(grade: Grade, task: Task, run: TestRun, touched: list[str]) -> Grade:
    """Grade the hidden-test run: statuses (distrusted when an evidence flag says they
    were forged), resolved or not, and the failure class and reason."""
    for flag in run.tamper_flags:
        if flag not in grade.tamper_flags:
            grade.tamper_flags.append(flag)
    grade.flaky_tests = run.flaky_tests
    statuses = _trusted_statuses(run.statuses, grade.tamper_flags)
    grade.test_statuses = statuses
    grade.tests_status, grade.resolved = grade_statuses(task, statuses)
    grade.test_source = run.source
    grade.test_exit_code = run.exit_code
    if grade.resolved:
        grade.failure_class = FailureClass.NONE
    elif run.timed_out:
        grade.failure_class, grade.failure_reason = FailureClass.TIMEOUT, run.error
    elif FORGERY_FLAGS.intersection(grade.tamper_flags):
        grade.failure_class, grade.failure_reason = FailureClass.TESTS_FAILED, run.error or "the test results are forged"
    elif run.error:
        grade.failure_class, grade.failure_reason = FailureClass.TEST_ERROR, run.error
    else:
        grade.failure_class, grade.failure_reason = FailureClass.TESTS_FAILED, _failing_tests_reason(grade)
    if touched and not grade.failure_reason:
        grade.failure_reason = f"test files touched by the patch were restored from base: {', '.join(touched)}"
    return grade


def _failing_tests_reason(grade: Grade) -> str:
    f2p = grade.tests_status["FAIL_TO_PASS"]["failure"]
    p2p = grade.tests_status["PASS_TO_PASS"]["failure"]
    parts = []
    if f2p:
        parts.append(f"{len(f2p)} FAIL_TO_PASS test(s) not passing (e.g. {f2p[0]})")
    if p2p:
        parts.append(f"{len(p2p)} PASS_TO_PASS test(s) broken (e.g. {p2p[0]})")
    return "; ".join(parts)


def _read_base_files(env, paths: list[str]) -> dict[str, str | None]:
    files: dict[str, str | None] = {}
    for path in paths:
        try:
            files[path] = env.read_file(path)
        except (FileNotFoundError, OSError):
            files[path] = None
    return files


def _record_base_files_only(task, paths, backend, limits, run_id, opener, instance_dir: Path, close: Callable) -> None:
    """base_files.json for a prediction that needs no test run (reports use it for
    edit distance); best effort, since the verdict does not depend on it."""
    try:
        env = opener(task, backend, limits, run_id)
    except Exception:
        return
    try:
        atomic_write_json(instance_dir / "base_files.json", _read_base_files(env, paths))
    except Exception:
        pass
    finally:
        close(env)


def _over(patch: str | None, limit: int | None) -> bool:
    return limit is not None and patch_size(patch) > limit


def _refused_for_symlinks(env, task: Task, grade: Grade, paths: list[str], how: str) -> bool:
    """Refuse the patch (and say so in `grade`) when a path it touches resolves
    outside the repository; checked before applying it and again after."""
    escapes = symlink_escapes_in_env(env, paths, workdir=hidden._workdir(env))
    if not escapes:
        return False
    grade.failure_class = FailureClass.PATCH_REFUSED
    grade.failure_reason = f"patch refused: {', '.join(escapes)} resolve(s) outside the repository {how}"
    grade.tamper_flags.append("symlink_escape")
    grade.tests_status = grade_statuses(task, {})[0]
    return True


def _summary(run_id: str, tasks: list[Task], predictions: Mapping[str, Prediction], grades: Mapping[str, Grade],
             errors: Mapping[str, str], wall_s: float) -> dict:
    submitted = sorted(i for i in predictions if i in {t.instance_id for t in tasks})
    empty = sorted(i for i, g in grades.items() if g.failure_class is FailureClass.EMPTY_PATCH)
    completed = sorted(i for i in grades if i not in empty)
    resolved = sorted(i for i in completed if grades[i].resolved)
    unresolved = sorted(i for i in completed if not grades[i].resolved)
    error_ids = sorted(errors)
    incomplete = sorted(set(submitted) - set(grades) - set(errors))
    classes: dict[str, int] = {}
    for grade in grades.values():
        classes[grade.failure_class.value] = classes.get(grade.failure_class.value, 0) + 1
    return {
        "total_instances": len(tasks),
        "submitted_instances": len(submitted),
        "completed_instances": len(completed),
        "resolved_instances": len(resolved),
        "unresolved_instances": len(unresolved),
        "empty_patch_instances": len(empty),
        "error_instances": len(error_ids),
        "completed_ids": completed,
        "incomplete_ids": incomplete,
        "empty_patch_ids": empty,
        "submitted_ids": submitted,
        "resolved_ids": resolved,
        "unresolved_ids": unresolved,
        "error_ids": error_ids,
        "schema_version": 2,
        "run_id": run_id,
        "pass_rate": len(resolved) / len(tasks) if tasks else 0.0,
        "failure_classes": classes,
        "error_reasons": dict(sorted(errors.items())),
        "tamper_flagged_ids": sorted(i for i, g in grades.items() if g.tamper_flags),
        "tests_touched_ids": sorted(i for i, g in grades.items() if g.tests_touched),
        "flaky_ids": sorted(i for i, g in grades.items() if g.flaky_tests),
        "wall_time_s": round(wall_s, 3),
        "harness_version": HARNESS_VERSION,
    }


def _load_previous(instance_dir: Path, instance_id: str) -> Grade | None:
    report = instance_dir / "report.json"
    if not report.exists():
        return None
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        return Grade.model_validate(data[instance_id])
    except Exception:
        return None


def _write_manifest(run_dir: Path, run_id: str, settings: dict, tasks: list[Task] | None = None,
                    tasks_from: str | None = None) -> None:
    """Write run.json (a swerve.runrecord.RunRecord): kind "eval" unless the folder already holds a
    run's record (then its settings gain an "eval" section)."""
    from swerve.runrecord import RECORD_VERSION, RunRecord, now_iso, read_run_record, tasks_source, write_run_record

    try:
        previous = read_run_record(run_dir)
    except ValueError:
        previous = None
    base = previous.model_dump() if previous is not None else {"kind": "eval", "created_at": now_iso()}
    base.update(record_version=RECORD_VERSION, run_id=run_id, swerve_version=swerve.__version__)
    base["settings"] = {**base.get("settings", {}), "eval": settings}
    if tasks_from or not (previous and previous.tasks.source):
        if tasks_from or tasks is not None:
            base["tasks"] = tasks_source(tasks_from, tasks)
    if previous is None or previous.kind == "eval":
        base["ended_at"] = None
    write_run_record(run_dir, RunRecord.model_validate(base))


def evaluate(
    tasks: Iterable[Task],
    predictions: Mapping[str, Prediction],
    *,
    run_id: str,
    output_dir: str | Path,
    workers: int = 1,
    timeout: float = TEST_RUN_TIMEOUT_S,
    backend: str = "auto",
    reruns: int = 0,
    instance_ids: Iterable[str] | None = None,
    progress: Callable[[str, Grade | None, str | None], None] | None = None,
    limits=None,
    opener: Callable | None = None,
    infra_attempts: int = INFRA_ATTEMPTS,
    ray: str | None = None,
    max_patch_bytes: int | None = MAX_PATCH_BYTES,
    tasks_from: str | None = None,
) -> RunReport:
    """Grade `predictions` against `tasks`; results land in OUTPUT_DIR/RUN_ID.

    RUN_ID/run.json (swerve.runrecord) records `tasks_from` (the task file or dataset
    name), a hash of the task rows, the settings and the start and end times.

    Re-running with the same run id skips instances already graded for the same
    patch content and task (see `patch_key`) and re-grades changed ones.
    `progress(instance_id, grade, error)` is called as each instance finishes.
    SIGINT / SIGTERM (KeyboardInterrupt, `swerve.interrupts.Interrupted`) abandon the
    instances in flight: their environments are closed at once, nothing of theirs is
    written as a grade or an error, the summary of what finished is written, and the
    interrupt is re-raised within seconds; a resumed run grades what was abandoned.
    One process per run folder: a second one gets RunFolderBusy (folder and pid).
    Patches over `max_patch_bytes` are refused as the model's result (PATCH_REFUSED).
    `ray` ('auto', HOST:PORT, ray://HOST:PORT or 'local') grades each instance as a
    Ray task on a cluster node, with that node's Docker daemon (see `ray_eval`); all
    the rest (files, resume, retries, summary) stays here, on the driver.
    Instances not graded are in `RunReport.failures`, typed (`swerve.harness.outcomes`).
    """
    tasks = _select(list(tasks), instance_ids)
    remote = None
    if ray:  # before anything is written: a missing Ray is bad input, not a run
        from swerve.harness.ray_eval import RayGrader

        remote = RayGrader(ray, run_id=run_id, timeout=timeout, backend=backend, reruns=reruns, limits=limits,
                           opener=opener)
    run_dir = Path(output_dir) / run_id
    settings = _RunSettings(run_id=run_id, run_dir=run_dir, workers=max(1, workers), timeout=timeout, backend=backend,
                            reruns=reruns, limits=limits, opener=opener, infra_attempts=max(1, infra_attempts),
                            ray=ray, remote=remote, max_patch_bytes=max_patch_bytes)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with run_folder_lock(run_dir), stoppable():
            report = _evaluate_in(settings, tasks, predictions, progress, tasks_from)
            finish_run_record(run_dir)
            return report
    finally:
        if remote is not None:
            remote.close()


def _select(tasks: list[Task], instance_ids: Iterable[str] | None) -> list[Task]:
    if not instance_ids:
        return tasks
    wanted = set(instance_ids)
    unknown = wanted - {t.instance_id for t in tasks}
    if unknown:
        raise ValueError(f"--instance-ids: no task named {', '.join(sorted(unknown))} in the task file; "
                         "check the ids against --tasks (`swerve tasks list FILE` lists them)")
    return [t for t in tasks if t.instance_id in wanted]


@dataclass(frozen=True)
class _RunSettings:
    """One run's settings, as `evaluate` received them."""

    run_id: str
    run_dir: Path
    workers: int
    timeout: float
    backend: str
    reruns: int
    limits: object
    opener: Callable | None
    infra_attempts: int
    ray: str | None
    remote: object
    max_patch_bytes: int | None

    def recorded(self, instances: int) -> dict:
        """The settings run.json records."""
        return {"workers": self.workers, "timeout": self.timeout, "backend": self.backend, "reruns": self.reruns,
                "harness_version": HARNESS_VERSION, "instances": instances, "ray": self.ray,
                "max_patch_bytes": self.max_patch_bytes}

    def instance_dir(self, task: Task) -> Path:
        return self.run_dir / "instances" / task.instance_id


def _evaluate_in(settings: _RunSettings, tasks: list[Task], predictions: Mapping[str, Prediction], progress,
                 tasks_from: str | None) -> RunReport:
    """`evaluate` once the run folder is locked and signals stop the run: record the
    run, schedule, grade and write each instance in parallel, write the summary."""
    _write_manifest(settings.run_dir, settings.run_id, settings.recorded(len(tasks)), tasks=tasks, tasks_from=tasks_from)
    if settings.remote is None and settings.opener is None:
        reap_orphaned_containers(settings.run_id, settings.backend)
    report = RunReport(run_id=settings.run_id, run_dir=settings.run_dir)
    started = time.monotonic()
    todo = _schedule(settings, tasks, predictions, report, progress)
    scheduler = EnvironmentScheduler(
        settings.opener or swerve.environments.open_environment, backend=settings.backend, limits=settings.limits,
        run_id=settings.run_id, workers=settings.workers,
        upcoming=[task for task, prediction in todo if _needs_environment(task, prediction, settings.max_patch_bytes)],
    )

    def work(task: Task, prediction: Prediction) -> None:
        outcome = _grade_with_retries(settings, scheduler, task, prediction)
        _write_outcome(settings, scheduler, report, task, outcome, progress)

    pool = ThreadPoolExecutor(max_workers=_instances_in_flight(settings), thread_name_prefix="swerve-eval")
    pending: set = set()
    try:
        pending = {pool.submit(work, task, prediction) for task, prediction in todo}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
    except KeyboardInterrupt:
        scheduler.abandon(pending, pool)
        _write_summary(report, tasks, predictions, time.monotonic() - started, interrupted=True)
        raise
    except BaseException:
        scheduler.abandon(pending, pool)
        raise
    pool.shutdown(wait=True)
    scheduler.finish()
    _write_summary(report, tasks, predictions, time.monotonic() - started)
    return report


def _instances_in_flight(settings: _RunSettings) -> int:
    """`workers` test runs at once, plus one instance whose stages before its tests (patch,
    restore, test patch, canaries) overlap theirs, when this machine has a core the test
    runs leave free; on a Ray cluster each instance runs where the cluster puts it."""
    if settings.remote is None and settings.workers < (os.cpu_count() or 1):
        return settings.workers + 1
    return settings.workers


def _schedule(settings: _RunSettings, tasks: list[Task], predictions: Mapping[str, Prediction], report: RunReport,
              progress) -> list[tuple[Task, Prediction]]:
    """What to grade, in task order: every task with a prediction, except those whose
    previous grade in this run folder is for the same patch and task (reused, reported
    through `progress` at once). A previous refusal for size is not reused once the
    limit lets the patch through."""
    todo: list[tuple[Task, Prediction]] = []
    for task in tasks:
        prediction = predictions.get(task.instance_id)
        if prediction is None:
            continue
        previous = _load_previous(settings.instance_dir(task), task.instance_id)
        if (previous is not None and previous.patch_hash == patch_key(task, prediction.model_patch)
                and not ("oversized_patch" in previous.tamper_flags
                         and not _over(prediction.model_patch, settings.max_patch_bytes))):
            report.grades[task.instance_id] = previous
            report.skipped.append(task.instance_id)
            if progress:
                progress(task.instance_id, previous, None)
            continue
        todo.append((task, prediction))
    return todo


def _needs_environment(task: Task, prediction: Prediction, max_patch_bytes: int | None) -> bool:
    """Whether grading this prediction starts an environment for a test run (what the
    scheduler opens ahead); an empty patch opens one only to record the base files the
    gold patch touches, so none when the task has no gold patch."""
    patch = prediction.model_patch
    if is_empty_patch(patch):
        return bool(touched_paths(task.patch))
    return not _over(patch, max_patch_bytes) and check_patch(patch).ok


def _grade_once(settings: _RunSettings, scheduler: EnvironmentScheduler, task: Task, prediction: Prediction) -> Grade:
    instance_dir = settings.instance_dir(task)
    if _over(prediction.model_patch, settings.max_patch_bytes):
        return evaluate_instance(task, prediction, run_id=settings.run_id, timeout=settings.timeout,
                                 max_patch_bytes=settings.max_patch_bytes)
    if settings.remote is not None:
        return settings.remote.grade(task, prediction, instance_dir, scheduler.stop)
    return evaluate_instance(task, prediction, run_id=settings.run_id, timeout=settings.timeout,
                             backend=settings.backend, reruns=settings.reruns, limits=settings.limits,
                             opener=scheduler.open, instance_dir=instance_dir, stop=scheduler.stop,
                             closer=scheduler.close, max_patch_bytes=settings.max_patch_bytes,
                             test_slot=scheduler.test_slot)


def _grade_with_retries(settings: _RunSettings, scheduler: EnvironmentScheduler, task: Task,
                        prediction: Prediction) -> Outcome:
    """Grade one instance: infrastructure failures are retried (with a growing pause)
    up to `infra_attempts` times; a bad task row or a harness error is not."""
    settings.instance_dir(task).mkdir(parents=True, exist_ok=True)
    error: EvalError | None = None
    for attempt in range(1, settings.infra_attempts + 1):
        if scheduler.stopped:
            return Abandoned()
        try:
            grade = _grade_once(settings, scheduler, task, prediction)
        except EvaluationStopped:
            return Abandoned()
        except Exception as exc:  # classified: infra (retried), bad task row, harness bug
            error = EvalError.from_exception(exc, attempts=attempt)
            if not error.retried:
                return NotGraded(error)
            if scheduler.stopped:
                return Abandoned()
            time.sleep(min(2.0 * attempt, 10.0))
            continue
        grade.model_name_or_path = prediction.model_name_or_path
        return Graded(grade)
    return NotGraded(error)


def _write_outcome(settings: _RunSettings, scheduler: EnvironmentScheduler, report: RunReport, task: Task,
                   outcome: Outcome, progress) -> None:
    """report.json for a grade, error.json for an instance not graded (each removing the
    other's stale file), nothing once the run is stopped: an environment may have been
    killed under the instance."""
    if isinstance(outcome, Abandoned):
        return
    instance_dir = settings.instance_dir(task)
    iid = task.instance_id
    with scheduler.lock:
        if scheduler.stopped:
            return
        if isinstance(outcome, Graded):
            atomic_write_json(instance_dir / "report.json", {iid: outcome.grade.model_dump(mode="json")})
            stale = instance_dir / "error.json"
            report.grades[iid] = outcome.grade
            report.failures.pop(iid, None)
        else:
            error = outcome.error
            atomic_write_json(instance_dir / "error.json", {"instance_id": iid, "error": error.text,
                                                            "kind": error.kind.value, "attempts": error.attempts})
            stale = instance_dir / "report.json"
            report.failures[iid] = error
        if stale.exists():
            stale.unlink()
    if progress:
        if isinstance(outcome, Graded):
            progress(iid, outcome.grade, None)
        else:
            progress(iid, None, outcome.error.text)


def _write_summary(report: RunReport, tasks: list[Task], predictions: Mapping[str, Prediction], wall_s: float,
                   interrupted: bool = False) -> None:
    report.summary = _summary(report.run_id, tasks, predictions, report.grades, report.errors, wall_s)
    if interrupted:
        report.summary["interrupted"] = True
    atomic_write_json(report.run_dir / "summary.json", report.summary)
