"""The task factory's logic without containers: baseline refusal, candidate verdicts
in a warm environment, hidden-test diffs, resume, problem statements, bad sources."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from swerve.harness import candidate_verdicts as verdicts
from swerve.harness import mint
from swerve.harness.candidate_verdicts import RunScope, Verdict
from swerve.harness.mint import CandidateOutcome, MintError, creation_diff, read_minted, sample_pass_to_pass
from swerve.harness.mutations import mutate_source, unified_diff
from swerve.harness.problem_statement import leaks, write_problem_statement
from swerve.harness.hidden_tests import TestRun as SuiteRun
from swerve.schema import ExecResult, Task
from swerve.schema import TestStatus as Status

P, F = Status.PASSED, Status.FAILED
TESTS = [f"pkg/tests/test_a.py::test_{i}" for i in range(5)]
TASK = Task(instance_id="mint-source-pkg", repo="local/pkg", repo_source="/nowhere")

PYTEST_OUTPUT = """\
=================================== FAILURES ===================================
___________________________________ test_0 ___________________________________

    def test_0():
>       assert clamp(5, 0, 3) == 3
E       assert 0 == 3
E        +  where 0 = clamp(5, 0, 3)

pkg/tests/test_a.py:6: AssertionError
___________________________________ test_1 ___________________________________

    def test_1():
>       assert window([1, 2], 1) == [[1], [2]]

pkg/tests/test_a.py:9: 
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

    def window(seq, size):
>       return seq[i:i + size + 1]
E       IndexError: list index out of range

pkg/core.py:4: IndexError
=========================== short test summary info ============================
FAILED pkg/tests/test_a.py::test_0 - assert 0 == 3
"""


class FakeEnv:
    """Records writes and resets; the suite's result comes from a scripted run_suite."""

    workdir = "/testbed"

    def __init__(self):
        self.writes: list[str] = []
        self.resets = 0

    def write_file(self, path, content):
        self.writes.append(path)

    def reset(self):
        self.resets += 1

    def exec(self, cmd, timeout=None):  # no Python answers: no bytecode cache
        return ExecResult(exit_code=1, output="")


def _scripted(monkeypatch, *runs: SuiteRun):
    queue = list(runs)
    monkeypatch.setattr(verdicts, "run_suite", lambda env, task, timeout, bytecode_cache="", server=None: queue.pop(0))


def _candidate():
    return mutate_source("def f(x):\n    return x < 1\n", "pkg/core.py", kinds=["flip_comparison"])[0]


def test_baseline_refuses_a_suite_that_mostly_fails(monkeypatch):
    _scripted(monkeypatch, SuiteRun(statuses={TESTS[0]: P, TESTS[1]: F, TESTS[2]: F}, exit_code=1))
    with pytest.raises(MintError, match=r"only 1 of 3 tests pass \(33% < 80%\)"):
        verdicts.baseline_passing(FakeEnv(), TASK, 60, "pypi:pkg==1")


def test_baseline_refuses_a_suite_that_does_not_run(monkeypatch):
    _scripted(monkeypatch, SuiteRun(statuses={}, exit_code=4, error="pytest exited 4", output="ERROR: usage\n"))
    with pytest.raises(MintError, match="the test suite does not run"):
        verdicts.baseline_passing(FakeEnv(), TASK, 60, "pypi:pkg==1")


def test_baseline_names_collection_errors(monkeypatch):
    _scripted(monkeypatch, SuiteRun(statuses={"tests/test_basic.py": Status.ERROR, TESTS[0]: P}, exit_code=1))
    with pytest.raises(MintError, match="does not collect .*tests/test_basic.py"):
        verdicts.baseline_passing(FakeEnv(), TASK, 60, "pypi:pkg==1")


def test_baseline_records_passing_tests(monkeypatch):
    _scripted(monkeypatch, SuiteRun(statuses={t: P for t in TESTS} | {"pkg/tests/test_a.py::skipped": Status.SKIPPED}))
    passing, total = verdicts.baseline_passing(FakeEnv(), TASK, 60, "x")
    assert passing == sorted(TESTS) and total == 5


def test_candidate_kept_when_stable_with_fail_and_pass(monkeypatch):
    run = SuiteRun(statuses={TESTS[0]: F, **{t: P for t in TESTS[1:]}}, output="out")
    _scripted(monkeypatch, run, run)
    env = FakeEnv()
    outcome = verdicts.test_candidate(env, TASK, _candidate(), TESTS, 60)
    assert outcome.verdict == "ok"
    assert outcome.fail_to_pass == [TESTS[0]] and outcome.pass_to_pass == TESTS[1:]
    assert env.writes == ["pkg/core.py"] and env.resets == 1


@pytest.mark.parametrize(
    "runs, verdict",
    [
        ([SuiteRun(statuses={t: P for t in TESTS})], "no_failing_test"),
        ([SuiteRun(statuses={t: F for t in TESTS})], "no_passing_test"),
        ([SuiteRun(timed_out=True)], "timeout"),
        ([SuiteRun(statuses={t: P for t in TESTS[1:]})], "tests_not_collected"),
        (
            [SuiteRun(statuses={TESTS[0]: F, **{t: P for t in TESTS[1:]}}), SuiteRun(statuses={t: P for t in TESTS})],
            "unstable",
        ),
    ],
)
def test_candidate_rejections(monkeypatch, runs, verdict):
    _scripted(monkeypatch, *runs)
    env = FakeEnv()
    assert verdicts.test_candidate(env, TASK, _candidate(), TESTS, 60).verdict == verdict
    assert env.resets == 1


class FakeCallMap:
    """Selects the given tests for every candidate (None: the whole suite)."""

    def __init__(self, selected):
        self.selected = selected

    def tests_for(self, candidate, passing):
        return self.selected


def _scripted_selected(monkeypatch, *runs: SuiteRun) -> list[list[str]]:
    queue, asked = list(runs), []

    def run_selected(env, task, tests, timeout, bytecode_cache="", server=None):
        asked.append(list(tests))
        return queue.pop(0)

    monkeypatch.setattr(verdicts, "run_selected", run_selected)
    return asked


def test_no_test_starting_the_function_rejects_without_a_run(monkeypatch):
    _scripted(monkeypatch)
    env = FakeEnv()
    outcome = verdicts.test_candidate(env, TASK, _candidate(), TESTS, 60, call_map=FakeCallMap([]))
    assert outcome.verdict is Verdict.NO_FAILING_TEST and outcome.tests_run is RunScope.NONE
    assert env.writes == [] and env.resets == 0


def test_screen_without_a_failure_rejects_on_the_selected_tests_only(monkeypatch):
    asked = _scripted_selected(monkeypatch, SuiteRun(statuses={TESTS[2]: P}))
    _scripted(monkeypatch)
    env = FakeEnv()
    outcome = verdicts.test_candidate(env, TASK, _candidate(), TESTS, 60, call_map=FakeCallMap([TESTS[2]]))
    assert outcome.verdict is Verdict.NO_FAILING_TEST and outcome.tests_run is RunScope.SELECTED
    assert asked == [[TESTS[2]]] and env.resets == 1


def test_screen_failure_is_decided_by_the_whole_suite(monkeypatch):
    _scripted_selected(monkeypatch, SuiteRun(statuses={TESTS[0]: F, TESTS[1]: P}))
    _scripted(monkeypatch, SuiteRun(statuses={TESTS[0]: F, **{t: P for t in TESTS[1:]}}, output="whole"))
    outcome = verdicts.test_candidate(FakeEnv(), TASK, _candidate(), TESTS, 60, call_map=FakeCallMap(TESTS[:2]))
    assert outcome.verdict is Verdict.OK and outcome.tests_run is RunScope.FULL and outcome.selected == 2
    assert outcome.fail_to_pass == [TESTS[0]] and outcome.pass_to_pass == TESTS[1:] and outcome.output == "whole"


@pytest.mark.parametrize("second, verdict", [
    (SuiteRun(statuses={TESTS[0]: F, TESTS[1]: F, **{t: P for t in TESTS[2:]}}), Verdict.OK),
    (SuiteRun(statuses={TESTS[0]: F, **{t: P for t in TESTS[1:]}}), Verdict.UNSTABLE),
])
def test_failures_beyond_the_screen_need_a_second_whole_run(monkeypatch, second, verdict):
    _scripted_selected(monkeypatch, SuiteRun(statuses={TESTS[0]: F}))
    first = SuiteRun(statuses={TESTS[0]: F, TESTS[1]: F, **{t: P for t in TESTS[2:]}})
    _scripted(monkeypatch, first, second)
    outcome = verdicts.test_candidate(FakeEnv(), TASK, _candidate(), TESTS, 60, call_map=FakeCallMap(TESTS[:1]))
    assert outcome.verdict is verdict


def test_whole_suite_rejects_what_the_screen_kept(monkeypatch):
    _scripted_selected(monkeypatch, SuiteRun(statuses={TESTS[0]: F}))
    _scripted(monkeypatch, SuiteRun(statuses={t: P for t in TESTS}))
    outcome = verdicts.test_candidate(FakeEnv(), TASK, _candidate(), TESTS, 60, call_map=FakeCallMap(TESTS[:1]))
    assert outcome.verdict is Verdict.NO_FAILING_TEST


def test_a_call_map_that_cannot_be_made_leaves_every_candidate_to_the_whole_suite(monkeypatch):
    from swerve.harness import call_map

    _scripted(monkeypatch, SuiteRun(statuses={t: P for t in TESTS}))

    def broken_map(env, task, timeout, bytecode_cache="", server=None):
        raise call_map.CallMapError("the traced suite wrote no call map (pytest exited 4)")

    monkeypatch.setattr(call_map, "map_calls", broken_map)
    env, said = FakeEnv(), []
    baseline = mint.start_baseline(env, TASK, timeout=60, source="x", select_tests=True, say=said.append)
    assert baseline.passing == sorted(TESTS) and baseline.call_map is None
    assert "no call map (the traced suite wrote no call map" in baseline.map_note and said[-1] == baseline.map_note
    assert env.resets == 1


def test_rejections_are_typed_and_infra_is_not_final():
    verdict = mint.Rejection(mint.RejectionKind.TESTS, "no_failing_test", verdict=Verdict.NO_FAILING_TEST)
    infra = mint.Rejection(mint.RejectionKind.INFRA, "reset failed in /testbed")
    refused = mint.Rejection(mint.RejectionKind.VALIDATION, "gold patch does not resolve (tests_failed)")
    assert (verdict.label, verdict.final) == ("no_failing_test", True)
    assert (infra.label, infra.final) == ("infra", False)
    assert (refused.label, refused.final, refused.describe()) == (
        "validation", True, "validation: gold patch does not resolve (tests_failed)")


TEST_FILE = """\
import pytest


def test_keep():
    assert True


@pytest.mark.parametrize("x", [1, 2])
def test_hidden(x):
    assert x


class TestGroup:
    def test_method_hidden(self):
        assert 1

    def test_method_kept(self):
        assert 2


class TestAllHidden:
    def test_only(self):
        assert 3
"""
HIDDEN = [
    "pkg/tests/test_a.py::test_hidden[1]",
    "pkg/tests/test_a.py::TestGroup::test_method_hidden",
    "pkg/tests/test_a.py::TestAllHidden::test_only",
]


def test_hide_tests_removes_only_the_named_definitions():
    stripped = mint.hide_tests(TEST_FILE, HIDDEN)
    compile(stripped, "t.py", "exec")
    assert "def test_keep" in stripped and "def test_method_kept" in stripped
    assert "def test_hidden" not in stripped and "parametrize" not in stripped
    assert "test_method_hidden" not in stripped and "TestAllHidden" not in stripped
    assert mint.visible_tests(stripped, HIDDEN) == []
    assert mint.visible_tests(TEST_FILE, HIDDEN) == HIDDEN


def test_hide_tests_hides_the_whole_file_when_a_test_is_not_defined_there():
    assert mint.hide_tests(TEST_FILE, ["pkg/tests/test_a.py::TestGroup::test_inherited"]) == ""


def test_hiding_and_restoring_round_trips_through_git_apply(tmp_path: Path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    test_file = tmp_path / "pkg" / "tests" / "test_a.py"
    test_file.parent.mkdir(parents=True)
    test_file.write_text(TEST_FILE)
    for hidden in (HIDDEN, ["pkg/tests/test_a.py::test_unknown"]):
        stripped = mint.hide_tests(TEST_FILE, hidden)
        (tmp_path / "hide.diff").write_text(unified_diff("pkg/tests/test_a.py", TEST_FILE, stripped))
        (tmp_path / "restore.diff").write_text(unified_diff("pkg/tests/test_a.py", stripped, TEST_FILE))
        subprocess.run(["git", "apply", "hide.diff"], cwd=tmp_path, check=True)
        assert test_file.read_text() == stripped
        subprocess.run(["git", "apply", "restore.diff"], cwd=tmp_path, check=True)
        assert test_file.read_text() == TEST_FILE


def test_noop_patch_creates_a_file(tmp_path: Path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "noop.diff").write_text(creation_diff("NOTES.txt", "x\n"))
    subprocess.run(["git", "apply", "noop.diff"], cwd=tmp_path, check=True)
    assert (tmp_path / "NOTES.txt").read_text() == "x\n"


def test_pass_to_pass_sample_is_bounded_and_deterministic():
    near = [f"a/test_x.py::t{i}" for i in range(60)]
    far = [f"a/test_y.py::t{i}" for i in range(60)]
    first = sample_pass_to_pass(near + far, {"a/test_x.py"}, "k")
    assert first == sample_pass_to_pass(near + far, {"a/test_x.py"}, "k")
    assert len(first) == mint.P2P_FROM_HIDDEN_FILES + mint.P2P_FROM_OTHER_FILES
    assert any(t in near for t in first) and any(t in far for t in first)


def test_problem_statement_is_drawn_from_failures_and_never_leaks_the_change():
    fix = "--- a/pkg/core.py\n+++ b/pkg/core.py\n@@ -1 +1 @@\n-    return seq[i:i + size + 1]\n+    return seq[i:i + size]\n"
    text = write_problem_statement(PYTEST_OUTPUT, TESTS[:2], package="pkg", version="1.0", fix_diff=fix)
    assert "assert clamp(5, 0, 3) == 3" in text
    assert "assert 0 == 3" in text and "IndexError" in text
    assert "Expected" in text and "Observed" in text
    assert "seq[i:i + size" not in text
    assert "core.py" not in text and ":4" not in text
    assert not leaks(text, ["    return seq[i:i + size + 1]"])


def test_problem_statement_writer_hook_is_used_unless_it_leaks():
    fix = "-    return x < 1\n+    return x >= 1\n"
    good = write_problem_statement(PYTEST_OUTPUT, TESTS[:1], package="pkg", fix_diff=fix, writer=lambda p: "clamp is wrong")
    assert good.strip() == "clamp is wrong"
    leaked = write_problem_statement(PYTEST_OUTPUT, TESTS[:1], package="pkg", fix_diff=fix,
                                     writer=lambda p: "the mutation flipped `return x >= 1`")
    assert "mutation" not in leaked and "assert 0 == 3" in leaked


def test_torn_last_line_is_repaired(tmp_path: Path):
    out = tmp_path / "tasks.jsonl"
    out.write_text(json.dumps({"instance_id": "a"}) + "\n" + '{"instance_id": "b", "pat')
    assert [r["instance_id"] for r in read_minted(out)] == ["a"]
    assert out.read_text() == json.dumps({"instance_id": "a"}) + "\n"


def test_bad_sources_fail_in_one_line_and_keep_previous_tasks(tmp_path: Path):
    out = tmp_path / "tasks.jsonl"
    before = json.dumps({"instance_id": "keep-me", "repo": "x/y"}) + "\n"
    out.write_text(before)
    no_tests = tmp_path / "notests"
    (no_tests / "pkg").mkdir(parents=True)
    (no_tests / "pkg" / "__init__.py").write_text("def f():\n    return 1\n")
    with pytest.raises(MintError, match="no test files") as info:
        mint.mint_tasks(str(no_tests), out, max_tasks=1)
    assert "\n" not in str(info.value)
    with pytest.raises(MintError, match="no such folder"):
        mint.mint_tasks(str(tmp_path / "missing"), out, max_tasks=1)
    with pytest.raises(MintError, match="pinned version"):
        mint.mint_tasks("pypi:toolz", out, max_tasks=1)
    with pytest.raises(MintError, match="unknown mutation kind"):
        mint.mint_tasks(str(no_tests), out, kinds=["bogus"])
    assert out.read_text() == before


def test_outcome_defaults():
    assert CandidateOutcome(verdict="ok").fail_to_pass == []


def test_source_task_names_repo_and_id():
    pypi = mint.source_task("pypi:more-itertools==10.2.0")
    assert pypi.repo_source == "pypi:more-itertools==10.2.0" and pypi.instance_id == "mint-source-more-itertools-10.2.0"
    git = mint.source_task("https://github.com/pytoolz/toolz.git")
    assert git.repo == "pytoolz/toolz"


def test_repo_from_pkg_info(tmp_path: Path):
    (tmp_path / "PKG-INFO").write_text(
        "Metadata-Version: 2.1\nName: toolz\nHome-page: https://github.com/pytoolz/toolz/\n\nbody\n"
    )
    assert mint._repo_from_metadata(tmp_path, "toolz/toolz") == "pytoolz/toolz"
    assert mint._repo_from_metadata(tmp_path / "missing", "toolz/toolz") == "toolz/toolz"


def test_cli_lists_tasks(tmp_path: Path):
    from typer.testing import CliRunner

    from swerve.cli import app

    rows = tmp_path / "t.jsonl"
    row = {"instance_id": "o__r-1-m0001", "repo": "o/r", "version": "1",
           "difficulty": {"mutation_kind": "off_by_one", "lines_changed": 2, "n_fail_to_pass": 1},
           "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": ["t.py::b"]}
    rows.write_text(json.dumps(row) + "\n")
    result = CliRunner().invoke(app, ["tasks", "list", str(rows)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "o__r-1-m0001" in result.output and "off_by_one" in result.output
    missing = CliRunner().invoke(app, ["tasks", "list", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2


def test_statement_fragment_is_trimmed_to_code_that_parses():
    from swerve.harness.problem_statement import TestFailure as Failure
    from swerve.harness.problem_statement import _snippet

    fragment = Failure("t.py::x", statement="assert f(ns) == 2", context=["a: 1 for a in b", "}", "ns = g()"])
    assert _snippet(fragment) == "ns = g()\nassert f(ns) == 2"


def test_title_names_the_library_call_not_a_local_helper():
    output = PYTEST_OUTPUT.replace("assert clamp(5, 0, 3) == 3", "assert helper(5) == 3")
    source = "def test_0():\n    def helper(x):\n        return clamp(x, 0, 3)\n    assert helper(5) == 3\n"
    text = write_problem_statement(output, TESTS[:1], package="pkg", test_sources={"pkg/tests/test_a.py": source})
    assert text.splitlines()[0].startswith("`clamp`")
    assert "def helper(x):" in text


def test_unittest_subtest_failures_are_found():
    output = PYTEST_OUTPUT.replace("___ test_0 ___", "___ test_0 (x=[1]) ___")
    text = write_problem_statement(output, TESTS[:1], package="pkg")
    assert "assert 0 == 3" in text
