"""Reproduction tests: the stochastic oracle writes them from the issue text only; the
`tests` strategy runs every attempt's reproduction tests on every candidate and on the
base (cross-validation); `judge:SPEC` as a tie-breaker, scripted and with the tiny model."""

from __future__ import annotations

import json

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.loop import run_episode
from swerve.agents.policies import reproduction
from swerve.agents.policies.stochastic import StochasticOraclePolicy, solves, writes_reproduction
from swerve.agents.selection import (
    Candidate,
    assert_blind,
    make_judge,
    reproduction_files,
    select_for_task,
    select_run,
    split_patch,
    task_view,
)
from swerve.schema import Completion

ISSUE = """`add` returns a wrong result

This check fails:

```python
assert add(2, 3) == 5
```

**Observed:** `assert -1 == 5`.

This check fails:

```python
total = add(add(1, 1), 1)
assert total == 3, total
```
"""

HIDDEN_TEST_PATCH = """diff --git a/test_calc.py b/test_calc.py
--- a/test_calc.py
+++ b/test_calc.py
@@ -3,3 +3,7 @@ from calc import add, mul
 
 def test_mul():
     assert mul(2, 3) == 6
+
+
+def test_add_hidden_secret():
+    assert add(40, 2) == 42
"""

SOURCE_GOLD = calc_task().patch
SOURCE_WRONG = SOURCE_GOLD.replace("+    return a + b", "+    return a + b - 1")
SOURCE_BREAKS_MUL = (
    "--- a/calc.py\n+++ b/calc.py\n@@ -1,6 +1,6 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
    " \n \n def mul(a, b):\n-    return a * b\n+    return a + b\n"
)


def _repro_diff(name: str, body: str) -> str:
    lines = body.splitlines()
    return (f"diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n+++ b/{name}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines))


REPRO_ADD = _repro_diff("test_issue_reproduction.py", "from calc import add\n\n\ndef test_issue_example_1():\n"
                                                      "    assert add(2, 3) == 5")
REPRO_ALREADY_PASSING = _repro_diff("test_issue_reproduction.py", "from calc import mul\n\n\ndef test_mul_again():\n"
                                                                  "    assert mul(2, 3) == 6")


def _issue_task(**update):
    return calc_task(with_tests=False).model_copy(update={"problem_statement": ISSUE, **update})


def test_examples_symbol_and_free_names_come_from_the_issue_text():
    assert reproduction.issue_examples(ISSUE) == ["assert add(2, 3) == 5", "total = add(add(1, 1), 1)\nassert total == 3, total"]
    assert reproduction.issue_examples("```python\nassert f(\n```") == []
    assert reproduction.issue_symbol(ISSUE) == "add"
    assert reproduction.issue_symbol("`reduceby` raises `AttributeError`") == "reduceby"
    assert reproduction.free_names("def g(x):\n    return x + y\nassert g(len(z)) == w") == ["y", "z", "w"]
    text = reproduction.render_reproduction_test(
        "`add` fails", ["assert add(2, 3) == 5", "runner.invoke(mi.first)", "self.assertTrue(add)"],
        {"module": "test_calc", "names": {"add": "attribute", "mi": "module:more_itertools"}})
    compile(text, "repro.py", "exec")
    assert "from test_calc import add" in text and "import more_itertools as mi" in text
    assert "def test_issue_example_2(runner):" in text and "class TestIssueReproduction(unittest.TestCase):" in text
    assert reproduction.pick_test_module("./tests/test_a.py\n./tests/test_core.py\n", ["src/pkg/core.py"]) == "tests/test_core.py"


def test_stochastic_oracle_writes_its_reproduction_test_from_the_issue_alone(tmp_path):
    """The same attempt with and without the hidden tests in the task row makes the same
    patch: its reproduction test owes nothing to the test patch or the test names."""
    seed = next(s for s in range(100) if writes_reproduction(_issue_task(), 0.7, s) and solves(_issue_task(), 0.5, s))
    patches, commands = [], []
    for index, task in enumerate([_issue_task(), _issue_task(test_patch=HIDDEN_TEST_PATCH,
                                                             FAIL_TO_PASS=["test_calc.py::test_add_hidden_secret"])]):
        env = scratch_env(calc_repo(tmp_path / f"repo{index}"))
        trajectory = run_episode(task, env, StochasticOraclePolicy(task, p=0.5, seed=seed))
        patches.append(trajectory.final_patch)
        commands.append("\n".join(env.commands))
    assert patches[0] == patches[1]
    source, tests = split_patch(patches[0])
    assert "+    return a + b" in source and "test_issue_reproduction.py" in tests
    assert "assert add(2, 3) == 5" in tests and "from test_calc import add" in tests
    for text in (patches[1], commands[1]):
        assert "test_add_hidden_secret" not in text and "add(40, 2)" not in text
    never = StochasticOraclePolicy(_issue_task(), p=0.5, seed=seed, repro=0.0)
    assert never._examples == [] and not any(writes_reproduction(_issue_task(), 0.0, s) for s in range(50))


def _opener(tmp_path, opened):
    def open_env():
        env = scratch_env(calc_repo(tmp_path / f"env{len(opened)}"))
        opened.append(env)
        return env
    return open_env


def test_tests_strategy_cross_validates_reproduction_tests(tmp_path):
    """The wrong fix comes first and breaks no visible test; only the reproduction test,
    written by the wrong attempt itself, tells the right fix apart. A test that already
    passes at the base proves nothing and counts for no one."""
    task = _issue_task(test_patch=HIDDEN_TEST_PATCH, FAIL_TO_PASS=["test_calc.py::test_add_hidden_secret"])
    view = task_view(task)
    assert_blind(view, secrets_of=task)
    opened: list = []
    candidates = [Candidate("c", 1, SOURCE_WRONG + REPRO_ADD, "submitted"),
                  Candidate("c", 2, SOURCE_BREAKS_MUL, "submitted"),
                  Candidate("c", 3, SOURCE_GOLD + REPRO_ALREADY_PASSING, "submitted"),
                  Candidate("c", 4, REPRO_ADD, "submitted")]
    chosen = select_for_task(view, candidates, ["tests"], open_env=_opener(tmp_path, opened))
    assert chosen.attempt == 3, [c.scores for c in candidates]
    assert [c.scores["tests"] for c in candidates] == [0, -1, 0, 0]
    assert [c.scores["repro"] for c in candidates] == [0, 1, 1, 0]
    assert any("repro:" in item for item in candidates[0].behaviour)
    assert [f.name for f in reproduction_files(candidates[0].test_patch)] == ["test_issue_reproduction.py"]
    assert candidates[3].key == "" and split_patch(candidates[2].patch)[0] == SOURCE_GOLD
    commands = "\n".join(command for env in opened for command in env.commands)
    assert "--continue-on-collection-errors" in commands and "test_swerve_repro_" in commands
    assert "test_add_hidden_secret" not in commands and "add(40, 2)" not in commands, "hidden tests never run"
    assert not any("hidden_secret" in item for c in candidates for item in c.behaviour)


def test_consensus_groups_by_source_change_not_by_test_files():
    view = task_view(_issue_task())
    candidates = [Candidate("c", 1, SOURCE_WRONG, "submitted"),
                  Candidate("c", 2, SOURCE_GOLD + REPRO_ADD, "submitted"),
                  Candidate("c", 3, SOURCE_GOLD + REPRO_ALREADY_PASSING, "submitted"),
                  Candidate("c", 4, REPRO_ADD, "submitted")]
    chosen = select_for_task(view, candidates, ["consensus"])
    assert chosen.attempt == 2 and [c.scores["consensus"] for c in candidates] == [1, 2, 2, 0]


class ScriptedJudge:
    """Rates a patch 8 when it holds `liked`, else 3; records every prompt."""

    name = "scripted-judge"

    def __init__(self, liked: str) -> None:
        self.liked = liked
        self.prompts: list[str] = []

    def act(self, messages, tools):
        self.prompts.append(messages[0]["content"])
        return Completion(text="<score>8</score>" if self.liked in messages[0]["content"] else "<score>3</score>")


def test_judge_breaks_ties_after_tests_and_never_overrides_them(tmp_path):
    task = _issue_task()
    view = task_view(task)
    tied = [Candidate("c", 1, SOURCE_WRONG, "submitted"), Candidate("c", 2, SOURCE_GOLD, "submitted")]
    judge = ScriptedJudge("a + b - 1")
    chosen = select_for_task(view, tied, ["tests", "judge:scripted"], open_env=_opener(tmp_path, []), judge=judge)
    assert chosen.attempt == 1 and chosen.scores["judge"] == 8.0, "visible tests tie, the judge decides"
    split = [Candidate("c", 1, SOURCE_BREAKS_MUL, "submitted"), Candidate("c", 2, SOURCE_GOLD, "submitted")]
    judge = ScriptedJudge("-    return a * b")
    chosen = select_for_task(view, split, ["tests", "judge:scripted"], open_env=_opener(tmp_path / "b", []),
                             judge=judge)
    assert chosen.attempt == 2 and split[0].scores["judge"] == 8.0, "tests decide first"
    assert len(judge.prompts) == 2 and all(ISSUE.strip() in prompt for prompt in judge.prompts)


def test_judge_spec_refuses_per_task_scripted_policies():
    with pytest.raises(ValueError, match="cannot judge blind"):
        make_judge("oracle")
    from typer.testing import CliRunner

    from swerve.cli import app

    result = CliRunner().invoke(app, ["select", "/nonexistent-run", "--tasks", "examples/smoke.jsonl",
                                      "--strategy", "tests,judge:oracle"])
    assert result.exit_code == 2 and "cannot judge blind" in result.output


@pytest.mark.rl
def test_tiny_random_model_judges_through_select_run(tmp_path):
    """`tests,judge:hf:tiny` end to end on a run folder: the model is real (random weights)
    so its ratings are noise, but every distinct patch gets one and a pick is written."""
    from swerve.agents.attempts import run_attempts
    from swerve.agents.policies import make_policy

    task = _issue_task()
    out = tmp_path / "many"
    count = {"n": 0}

    def open_env(task, *args):
        count["n"] += 1
        return scratch_env(calc_repo(tmp_path / f"env{count['n']}"), task.instance_id)

    spec = "oracle-stochastic:p=0.5"
    run_attempts([task], lambda seed: (lambda t: make_policy(spec, task=t, seed=seed)), attempts=3, out_dir=out,
                 open_env=open_env, progress=False, policy_spec=spec)
    summary = select_run(out, [task], "tests,judge:hf:tiny?max_new_tokens=6&temperature=0", open_env=open_env)
    row = json.loads(open(summary["predictions"]).read().splitlines()[0])
    assert set(row["candidate_scores"]) == {"1", "2", "3"}
    for scores in row["candidate_scores"].values():
        assert {"tests", "repro", "judge"} <= set(scores) and 0.0 <= scores["judge"] <= 10.0


def test_every_bundled_issue_example_renders_as_a_valid_test_module():
    import glob

    from swerve.harness.tasks import load_tasks

    tasks = [t for path in sorted(glob.glob("examples/*.jsonl")) for t in load_tasks(path)]
    rendered = 0
    for task in tasks:
        examples = reproduction.issue_examples(task.problem_statement)
        if not examples:
            continue
        names = {name: "attribute" for code in examples for name in reproduction.free_names(code)}
        text = reproduction.render_reproduction_test(task.problem_statement.splitlines()[0], examples,
                                                     {"module": "tests.test_module", "names": names})
        compile(text, task.instance_id, "exec")
        assert task.test_patch not in text
        rendered += 1
    assert rendered >= 30


def test_two_environments_on_one_host_never_read_each_others_test_results(tmp_path):
    """Local and scratch environments share the host's /tmp; with `select --workers N` one
    task's suite may finish between another's run and its read of the JUnit file."""
    from swerve.agents.selection import _visible_failures

    from agents_fake_env import make_repo

    broken = make_repo(tmp_path / "broken", {"test_calc.py": "def test_mul():\n    assert False\n"})
    first, second = scratch_env(calc_repo(tmp_path / "fine")), scratch_env(broken)
    view = task_view(calc_task(with_tests=False))
    seen: dict = {}

    class RunsTheOtherInBetween:
        def exec(self, cmd, timeout=None):
            if cmd.startswith("cat ") and "other" not in seen:
                seen["other"] = _visible_failures(second, view, 120)
            return first.exec(cmd, timeout)

    try:
        failed, ran = _visible_failures(RunsTheOtherInBetween(), view, 120)
        assert seen["other"] == ({"test_calc::test_mul"}, {"test_calc::test_mul"})
        assert (failed, ran) == (set(), {"test_calc::test_mul"}), "the first environment's own results"
    finally:
        first.close()
        second.close()
