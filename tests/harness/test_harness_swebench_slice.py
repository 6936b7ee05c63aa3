"""The slice of genuine SWE-bench rows, end to end in Docker (../shared/swebench-slice).

Each row is loaded as published (only repo_source points at the local bare
repository), gets its official environment from SWE-bench's spec, and is graded
with gold, a no-op patch (a blank line added to the README, so the tests do run)
and the shipped model predictions. SWE-bench's own parser and grading, run on
the test_output.txt swerve stored, must reach swerve's verdict for every row and
every prediction.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from swebench_conformance import official_verdict, readme_noop_patch
from swebench_slice import SLICE, slice_predictions, write_slice_rows

from swerve.harness.evaluate import evaluate
from swerve.harness.swebench.requirements import local_git_dir
from swerve.harness.tasks import load_predictions, load_tasks
from swerve.schema import Prediction

pytestmark = [pytest.mark.docker, pytest.mark.slow]

README_NAMES = ("README.md", "README.rst", "README")
# Where swerve's verdict on the shipped predictions differs from the 2024 official one,
# with the reason (docs/swebench.md, "The slice: verdicts and the differences").
EXPECTED_DISAGREEMENTS = {
    "pallets__flask-5014": "the 2024 environment had Werkzeug 3 (48 of 60 tests error); with the spec's "
                           "Werkzeug==2.3.7 pin the prediction, equivalent to gold, passes",
}
# Rows whose gold patch cannot resolve with networking off: their tests reach real hosts.
NEEDS_NETWORK = {
    "psf__requests-2674": "test_requests.py calls httpbin.org (and https, google.co.uk, 10.255.255.1)",
}
NETWORK_ERRORS = ("Temporary failure in name resolution", "Network is unreachable")


def noop_patch(task) -> str:
    repo = local_git_dir(task.repo_source)
    for name in README_NAMES:
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{task.base_commit}:{name}"],
                               capture_output=True, text=True)
        if shown.returncode == 0:
            return readme_noop_patch(shown.stdout.splitlines()[0], name)
    raise AssertionError(f"{task.instance_id}: no README at the base commit")


@pytest.fixture(scope="module")
def slice_runs(docker_client, tmp_path_factory):
    folder = tmp_path_factory.mktemp("swebench-slice")
    tasks = load_tasks(write_slice_rows(folder / "rows.jsonl"))
    model = {p["instance_id"]: Prediction.model_validate(p) for p in slice_predictions()}
    predictions = {
        "gold": load_predictions("gold", tasks),
        "noop": {t.instance_id: Prediction(instance_id=t.instance_id, model_name_or_path="noop",
                                           model_patch=noop_patch(t)) for t in tasks},
        "model": model,
    }
    runs = {kind: evaluate(tasks, preds, run_id=f"slice-{kind}", output_dir=folder, backend="docker", workers=2)
            for kind, preds in predictions.items()}
    return tasks, folder, runs


def test_slice_is_eight_rows_with_official_verdicts():
    assert len(slice_predictions()) == 8 and (SLICE / "rows.jsonl").is_file()


def test_gold_resolves_every_row_and_noop_none(slice_runs):
    tasks, _, runs = slice_runs
    for kind in ("gold", "noop"):
        assert runs[kind].errors == {}, (kind, runs[kind].errors)
    gold = {i: (g.resolved, g.failure_reason) for i, g in runs["gold"].grades.items()}
    assert sorted(runs["gold"].resolved_ids) == sorted(t.instance_id for t in tasks if t.instance_id not in NEEDS_NETWORK), gold
    assert runs["noop"].resolved_ids == []


def failure_sections(log: str) -> dict[str, str]:
    """pytest's FAILURES report, {"Class.test_x" or "test_x": its text}."""
    sections: dict[str, str] = {}
    current = None
    for line in log.split("=== FAILURES ===", 1)[-1].splitlines():
        header = re.match(r"^_{3,} (\S+) _{3,}$", line)
        if header:
            current = header.group(1)
            sections[current] = ""
        elif line.startswith("====") and current is not None and "short test summary" in line:
            break
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def test_gold_fails_only_where_the_tests_need_the_network(slice_runs):
    """With networking off, requests' tests cannot reach httpbin.org: every graded test that
    fails under gold fails with a network error."""
    _, folder, runs = slice_runs
    for instance_id in NEEDS_NETWORK:
        grade = runs["gold"].grades[instance_id]
        assert not grade.resolved
        log = (folder / "slice-gold" / "instances" / instance_id / "test_output.txt").read_text()
        sections = failure_sections(log)
        failing = [*grade.tests_status["FAIL_TO_PASS"]["failure"], *grade.tests_status["PASS_TO_PASS"]["failure"]]
        assert failing
        for test in failing:
            text = sections[".".join(test.split("::")[1:])]
            assert any(error in text for error in NETWORK_ERRORS), test


def test_each_row_runs_under_its_spec_python(slice_runs):
    tasks, folder, runs = slice_runs
    for task in tasks:
        environment = runs["gold"].grades[task.instance_id].environment
        assert environment["python"] == task.python and environment["spec_source"] == task.spec_source
        log = (folder / "slice-gold" / "instances" / task.instance_id / "test_output.txt").read_text()
        # pytest's header ("Python 3.9.2") and sympy's bin/test header ("(3.9.2-final-0)") both name it
        assert f"Python {task.python}." in log or f"({task.python}." in log, (task.instance_id, task.python, log[:600])


def test_model_verdicts_match_the_official_harness(slice_runs):
    _, _, runs = slice_runs
    official = {p["instance_id"]: p["official_resolved"] for p in slice_predictions()}
    assert runs["model"].errors == {}
    ours = {i: g.resolved for i, g in runs["model"].grades.items()}
    differing = {i for i in official if ours[i] != official[i]}
    assert differing == set(EXPECTED_DISAGREEMENTS), {i: (ours[i], official[i]) for i in differing}
    assert len(official) - len(differing) >= 7


def test_official_grader_reads_swerves_logs_to_the_same_verdict(slice_runs):
    tasks, folder, runs = slice_runs
    disagreements = []
    checked = 0
    for kind, report in runs.items():
        for task in tasks:
            grade = report.grades[task.instance_id]
            log = folder / f"slice-{kind}" / "instances" / task.instance_id / "test_output.txt"
            if not log.exists():
                assert grade.failure_class.value in ("empty_patch", "apply_failed", "patch_refused"), (kind, task.instance_id)
                continue
            theirs, status_map = official_verdict(task, log)
            checked += 1
            if theirs != grade.resolved:
                disagreements.append((kind, task.instance_id, grade.resolved, theirs, grade.failure_reason))
    assert disagreements == []
    assert checked >= 2 * len(tasks)
