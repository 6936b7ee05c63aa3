"""`evaluate(tasks, predictions, ...)`: grade predictions in fresh environments, in
parallel, resumably, writing each instance's result atomically as it finishes.

Infra failures (an image that will not build, a daemon error) are retried a few
times and then reported as errors, never as the model's result; everything the
patch did (fail to apply, time out, break tests) is the model's and is labelled.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import swerve
import swerve.environments
from swerve.errors import InfraError, TaskFormatError
from swerve.fileio import atomic_write_json, atomic_write_text, run_folder_lock
from swerve.runrecord import finish_run_record
from swerve.harness import hidden_tests as hidden
from swerve.harness.abandon import close_in_parallel, reap_orphaned_containers, remove_own_containers
from swerve.harness.flags import FORGERY_FLAGS, evidence_flags
from swerve.harness.grading import grade_statuses
from swerve.harness.patches import (
    check_patch,
    is_empty_patch,
    symlink_escapes_in_env,
    touched_paths,
)
from swerve.interrupts import stoppable
from swerve.schema import FailureClass, Grade, Prediction, Task, TestStatus

HARNESS_VERSION = "swerve-eval-1"
INFRA_ATTEMPTS = 3
MAX_PATCH_BYTES = 5_000_000
"""Patches larger than this are refused before any environment starts (`--max-patch-bytes`)."""
ABANDON_WAIT_S = 3.0
"""On an interrupt: how long the workers get to notice that their environments are gone."""
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
    """What a run produced: per-instance grades, infra errors, and the summary dict
    that is also written to RUN_DIR/summary.json."""

    run_id: str
    run_dir: Path
    grades: dict[str, Grade] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def resolved_ids(self) -> list[str]:
        return sorted(i for i, g in self.grades.items() if g.resolved)


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


def _python_of(env, task: Task) -> dict[str, str]:
    """The image's Python (major.minor, as swerve's images record it) and where the row's
    environment came from, for the report; empty where the image does not say."""
    found = {"spec_source": task.spec_source} if task.spec_source else {}
    try:
        version = env.read_file("/opt/swerve/python-version").strip()
    except (FileNotFoundError, OSError):
        return found
    return {"python": version, **found} if version[:1].isdigit() and len(version) < 16 else found


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


def _close_quietly(env) -> None:
    try:
        env.close()
    except Exception:
        pass


def _over(patch: str | None, limit: int | None) -> bool:
    return limit is not None and patch_size(patch) > limit


def _close_opened(future: Future) -> None:
    """A prefetched environment that finished opening after the run stopped."""
    if not future.cancelled() and future.exception() is None:
        _close_quietly(future.result())


class EvaluationStopped(Exception):
    """The run was interrupted; the instance is left for a resumed run."""


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
) -> Grade:
    """Grade one prediction in a fresh environment. Raises InfraError when the
    infrastructure failed (the caller retries); returns the model's Grade otherwise.
    A patch over `max_patch_bytes` (None: no limit) is refused without an environment.
    Raises TaskFormatError for a row that cannot be evaluated as given (no SWE-bench spec)."""
    if task.spec_error:
        raise TaskFormatError(task.spec_error)
    patch = prediction.model_patch
    grade = Grade(
        instance_id=task.instance_id,
        patch_is_None=patch is None,
        patch_exists=not is_empty_patch(patch),
        patch_hash=patch_key(task, patch),
        model_name_or_path=prediction.model_name_or_path,
        test_source="",
        test_exit_code=None,
        environment={},
    )
    started = time.monotonic()
    close = closer or _close_quietly
    opener = opener or swerve.environments.open_environment
    if refuse_oversized_patch(grade, task, patch, max_patch_bytes):
        return grade
    if instance_dir is not None:
        atomic_write_text(instance_dir / "patch.diff", patch or "")
    gold_paths = touched_paths(task.patch)
    if is_empty_patch(patch):
        grade.failure_class = FailureClass.EMPTY_PATCH
        grade.failure_reason = "the prediction has no patch"
        grade.tests_status = grade_statuses(task, {})[0]
        if instance_dir is not None and gold_paths:
            _record_base_files_only(task, gold_paths, backend, limits, run_id, opener, instance_dir, close)
        return grade
    check = check_patch(patch)
    if not check.ok:
        grade.failure_class = FailureClass.PATCH_REFUSED
        grade.failure_reason = "patch refused: " + "; ".join(check.problems)
        grade.tamper_flags.append("unsafe_patch" if "malformed" not in grade.failure_reason and "not a diff" not in grade.failure_reason else "malformed_patch")
        grade.tests_status = grade_statuses(task, {})[0]
        if instance_dir is not None and (gold_paths or check.paths):
            _record_base_files_only(task, list(dict.fromkeys([*check.paths, *gold_paths])), backend, limits, run_id,
                                    opener, instance_dir, close)
        return grade
    grade.tamper_flags.extend(_suspicious(patch))

    env = opener(task, backend, limits, run_id)
    try:
        grade.durations["env_start_s"] = round(time.monotonic() - started, 3)
        info = getattr(env, "info", None)
        if info is not None:
            grade.environment = {"backend": info.backend, "image": info.image, "image_digest": info.image_digest,
                                 **_python_of(env, task)}
        if stop is not None and stop.is_set():
            raise EvaluationStopped()
        base_files = _read_base_files(env, list(dict.fromkeys([*check.paths, *gold_paths])))
        if instance_dir is not None:
            atomic_write_json(instance_dir / "base_files.json", base_files)

        if _refused_for_symlinks(env, task, grade, check.paths, "through a symlink already in the repository"):
            return grade

        t0 = time.monotonic()
        applied = hidden.apply_model_patch(env, patch)
        grade.durations["apply_s"] = round(time.monotonic() - t0, 3)
        if not applied.applied:
            grade.failure_class = FailureClass.PATCH_REFUSED if applied.malformed else FailureClass.APPLY_FAILED
            grade.failure_reason = ("malformed diff: " if applied.malformed else "patch did not apply: ") + applied.output.strip().splitlines()[-1][:300] if applied.output.strip() else "patch did not apply"
            if applied.malformed:
                grade.tamper_flags.append("malformed_patch")
            grade.tests_status = grade_statuses(task, {})[0]
            if instance_dir is not None:
                atomic_write_text(instance_dir / "test_output.txt", applied.output)
            return grade
        grade.patch_successfully_applied = True
        grade.apply_method = applied.method

        if _refused_for_symlinks(env, task, grade, check.paths, "through a symlink the patch created"):
            return grade

        for flag in hidden.restore_runner_files(env, check.paths):
            grade.tamper_flags.append(flag)
        eval_script_mode = bool(task.eval_script and task.log_parser)
        if eval_script_mode:
            touched = hidden.tampered_test_files(env, check.paths)
            hidden.restore_from_base(env, touched)
            prep_error = ""
        else:
            touched, prep_error = hidden.prepare_hidden_tests(env, task, check.paths)
        grade.tests_touched = touched
        if touched:
            grade.tamper_flags.append("tests_touched")
        if prep_error:
            grade.failure_class = FailureClass.TEST_ERROR
            grade.failure_reason = prep_error
            grade.tests_status = grade_statuses(task, {})[0]
            return grade

        if stop is not None and stop.is_set():
            raise EvaluationStopped()
        t0 = time.monotonic()
        run = hidden.run_hidden_tests(env, task, timeout=timeout, reruns=reruns, model_paths=check.paths)
        grade.durations["tests_s"] = round(time.monotonic() - t0, 3)
        if stop is not None and stop.is_set():
            raise EvaluationStopped()
        if instance_dir is not None:
            atomic_write_text(instance_dir / "test_output.txt", run.output)
            atomic_write_text(instance_dir / "eval.sh", "#!/bin/bash\n" + run.command + "\n")
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
            grade.failure_class = FailureClass.TIMEOUT
            grade.failure_reason = run.error
        elif FORGERY_FLAGS.intersection(grade.tamper_flags):
            grade.failure_class = FailureClass.TESTS_FAILED
            grade.failure_reason = run.error or "the test results are forged"
        elif run.error:
            grade.failure_class = FailureClass.TEST_ERROR
            grade.failure_reason = run.error
        else:
            grade.failure_class = FailureClass.TESTS_FAILED
            f2p = grade.tests_status["FAIL_TO_PASS"]["failure"]
            p2p = grade.tests_status["PASS_TO_PASS"]["failure"]
            parts = []
            if f2p:
                parts.append(f"{len(f2p)} FAIL_TO_PASS test(s) not passing (e.g. {f2p[0]})")
            if p2p:
                parts.append(f"{len(p2p)} PASS_TO_PASS test(s) broken (e.g. {p2p[0]})")
            grade.failure_reason = "; ".join(parts)
        if touched and not grade.failure_reason:
            grade.failure_reason = f"test files touched by the patch were restored from base: {', '.join(touched)}"
        return grade
    finally:
        grade.durations["total_s"] = round(time.monotonic() - started, 3)
        close(env)


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
    timeout: float = 1800,
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
    """
    tasks = list(tasks)
    if instance_ids:
        wanted = set(instance_ids)
        unknown = wanted - {t.instance_id for t in tasks}
        if unknown:
            raise ValueError(f"--instance-ids: no task named {', '.join(sorted(unknown))}")
        tasks = [t for t in tasks if t.instance_id in wanted]
    remote = None
    if ray:  # before anything is written: a missing Ray is bad input, not a run
        from swerve.harness.ray_eval import RayGrader

        remote = RayGrader(ray, run_id=run_id, timeout=timeout, backend=backend, reruns=reruns, limits=limits,
                           opener=opener)
    run_dir = Path(output_dir) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with run_folder_lock(run_dir), stoppable():
            report = _evaluate_in(run_dir, tasks, predictions, run_id=run_id, workers=workers, timeout=timeout,
                                  backend=backend, reruns=reruns, progress=progress, limits=limits, opener=opener,
                                  infra_attempts=infra_attempts, ray=ray, remote=remote,
                                  max_patch_bytes=max_patch_bytes, tasks_from=tasks_from)
            finish_run_record(run_dir)
            return report
    finally:
        if remote is not None:
            remote.close()


def _evaluate_in(run_dir: Path, tasks: list[Task], predictions: Mapping[str, Prediction], *, run_id: str,
                 workers: int, timeout: float, backend: str, reruns: int, progress, limits, opener: Callable,
                 infra_attempts: int, ray: str | None, remote, max_patch_bytes: int | None,
                 tasks_from: str | None = None) -> RunReport:
    """`evaluate` once the run folder is locked and signals stop the run."""
    settings = {"workers": workers, "timeout": timeout, "backend": backend, "reruns": reruns,
                "harness_version": HARNESS_VERSION, "instances": len(tasks), "ray": ray,
                "max_patch_bytes": max_patch_bytes}
    _write_manifest(run_dir, run_id, settings, tasks=tasks, tasks_from=tasks_from)
    if remote is None and opener is None:
        reap_orphaned_containers(run_id, backend)
    opener = opener or swerve.environments.open_environment
    report = RunReport(run_id=run_id, run_dir=run_dir)
    started = time.monotonic()

    todo: list[tuple[Task, Prediction]] = []
    for task in tasks:
        prediction = predictions.get(task.instance_id)
        if prediction is None:
            continue
        instance_dir = run_dir / "instances" / task.instance_id
        previous = _load_previous(instance_dir, task.instance_id)
        if (previous is not None and previous.patch_hash == patch_key(task, prediction.model_patch)
                and not ("oversized_patch" in previous.tamper_flags and not _over(prediction.model_patch, max_patch_bytes))):
            report.grades[task.instance_id] = previous
            report.skipped.append(task.instance_id)
            if progress:
                progress(task.instance_id, previous, None)
            continue
        todo.append((task, prediction))

    stop = threading.Event()
    lock = threading.Lock()
    active: list = []
    prefetch_pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="swerve-prefetch")
    close_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="swerve-close")
    prefetched: dict[str, Future] = {}
    claimed: set[str] = set()
    upcoming = [task for task, prediction in todo
                if is_empty_patch(prediction.model_patch)
                or (not _over(prediction.model_patch, max_patch_bytes) and check_patch(prediction.model_patch).ok)]

    def prefetch_next() -> None:
        """Start the next instance's environment while this one runs its tests, so
        container start-up overlaps test time instead of adding to it."""
        with lock:
            if stop.is_set():
                return
            for task in upcoming:
                if task.instance_id not in claimed and task.instance_id not in prefetched:
                    prefetched[task.instance_id] = prefetch_pool.submit(opener, task, backend, limits, run_id)
                    return

    def tracked_opener(task: Task, backend_name: str, env_limits, env_run_id: str):
        with lock:
            claimed.add(task.instance_id)
            future = prefetched.pop(task.instance_id, None)
        prefetch_next()
        env = future.result() if future is not None else opener(task, backend_name, env_limits, env_run_id)
        with lock:
            active.append(env)
        if stop.is_set():
            untrack(env)
            env.close()
            raise EvaluationStopped()
        return env

    def untrack(env) -> None:
        with lock:
            active[:] = [other for other in active if other is not env]

    def close_later(env) -> None:
        untrack(env)
        close_pool.submit(_close_quietly, env)

    def drain_prefetched() -> None:
        with lock:
            leftovers = list(prefetched.values())
            prefetched.clear()
        prefetch_pool.shutdown(wait=True, cancel_futures=True)
        for future in leftovers:
            if not future.cancelled() and future.exception() is None:
                _close_quietly(future.result())

    def work(task: Task, prediction: Prediction) -> None:
        instance_dir = run_dir / "instances" / task.instance_id
        instance_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for attempt in range(1, max(1, infra_attempts) + 1):
            if stop.is_set():
                return
            try:
                if _over(prediction.model_patch, max_patch_bytes):
                    grade = evaluate_instance(task, prediction, run_id=run_id, timeout=timeout,
                                              max_patch_bytes=max_patch_bytes)
                elif remote is not None:
                    grade = remote.grade(task, prediction, instance_dir, stop)
                else:
                    grade = evaluate_instance(task, prediction, run_id=run_id, timeout=timeout, backend=backend,
                                              reruns=reruns, limits=limits, opener=tracked_opener,
                                              instance_dir=instance_dir, stop=stop, closer=close_later,
                                              max_patch_bytes=max_patch_bytes)
            except EvaluationStopped:
                return
            except InfraError as exc:
                last_error = f"infra: {exc}"
                if stop.is_set():
                    return
                time.sleep(min(2.0 * attempt, 10.0))
                continue
            except TaskFormatError as exc:  # bad input: one line naming the row and the fix
                last_error = f"bad task: {exc}"
                break
            except Exception as exc:  # a harness bug is never the model's result either
                last_error = f"harness error: {type(exc).__name__}: {exc}"
                break
            grade.model_name_or_path = prediction.model_name_or_path
            with lock:  # never a grade once the run is stopped: its environment may have been killed under it
                if stop.is_set():
                    return
                atomic_write_json(instance_dir / "report.json", {task.instance_id: grade.model_dump(mode="json")})
                error_file = instance_dir / "error.json"
                if error_file.exists():
                    error_file.unlink()
                report.grades[task.instance_id] = grade
                report.errors.pop(task.instance_id, None)
            if progress:
                progress(task.instance_id, grade, None)
            return
        with lock:
            if stop.is_set():
                return
            atomic_write_json(instance_dir / "error.json", {"instance_id": task.instance_id, "error": last_error,
                                                            "attempts": infra_attempts})
            stale = instance_dir / "report.json"
            if stale.exists():
                stale.unlink()
            report.errors[task.instance_id] = last_error
        if progress:
            progress(task.instance_id, None, last_error)

    def abandon(pending: set) -> None:
        """Stop: no new work, nothing more written; close what is open without waiting
        for the threads using it; give them a few seconds to notice; remove any
        container of this run that this process started and nobody closed."""
        with lock:
            stop.set()
            opened = list(active)
            active.clear()
            leftovers = list(prefetched.values())
            prefetched.clear()
        pool.shutdown(wait=False, cancel_futures=True)
        prefetch_pool.shutdown(wait=False, cancel_futures=True)
        give_up = time.monotonic() + ABANDON_WAIT_S
        close_in_parallel(opened, wait_s=ABANDON_WAIT_S)
        wait([f for f in [*pending, *leftovers] if not f.cancelled()], timeout=max(0.0, give_up - time.monotonic()))
        for future in leftovers:  # closed now if opened by now, else once it opens
            future.add_done_callback(_close_opened)
        close_pool.shutdown(wait=False)
        remove_own_containers(run_id)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="swerve-eval")
    pending: set = set()
    try:
        pending = {pool.submit(work, task, prediction) for task, prediction in todo}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
    except KeyboardInterrupt:
        abandon(pending)
        report.summary = _summary(run_id, tasks, predictions, report.grades, report.errors, time.monotonic() - started)
        report.summary["interrupted"] = True
        atomic_write_json(run_dir / "summary.json", report.summary)
        raise
    except BaseException:
        abandon(pending)
        raise
    pool.shutdown(wait=True)
    drain_prefetched()
    close_pool.shutdown(wait=True)
    report.summary = _summary(run_id, tasks, predictions, report.grades, report.errors, time.monotonic() - started)
    atomic_write_json(run_dir / "summary.json", report.summary)
    return report
