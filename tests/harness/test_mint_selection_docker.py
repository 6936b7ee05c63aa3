"""Test selection on a real source in a real container: the call map made by the probe
plugin inside the environment names the tests that start a function, and candidates
screened with it get exactly the verdicts of the whole-suite decision."""

from __future__ import annotations

import itertools

import pytest

from swerve.environments import Limits, open_environment
from swerve.environments.sources import prepare_repo
from swerve.harness.call_map import map_calls
from swerve.harness.candidate_verdicts import RunScope, baseline_passing
from swerve.harness.candidate_verdicts import test_candidate as decide
from swerve.harness.mint import source_task
from swerve.harness.mutations import Candidate, generate_candidates, unified_diff

SOURCE = "pypi:toolz==0.12.1"


@pytest.mark.docker
def test_selected_decisions_match_the_whole_suite(docker_client):
    task = source_task(SOURCE)
    repo = prepare_repo(task)
    candidates = list(itertools.islice(generate_candidates(repo.path, seed=0), 8)) + [_harmless_change(repo.path)]
    with open_environment(task, "docker", Limits(exec_timeout_s=300), run_id="test-mint-select") as env:
        passing, _ = baseline_passing(env, task, 240, SOURCE)
        call_map = map_calls(env, task, timeout=240)
        env.reset()
        assert call_map.unmapped(passing) == []
        merged = call_map.callers.get(("toolz/dicttoolz.py", 19), set())  # def merge(*dicts, **kwargs)
        assert "toolz/tests/test_dicttoolz.py::TestDict::test_merge" in merged
        assert not any(t.startswith("toolz/tests/test_itertoolz.py") for t in merged)

        scopes = []
        for candidate in candidates:
            whole = decide(env, task, candidate, passing, 240)
            screened = decide(env, task, candidate, passing, 240, call_map=call_map)
            assert (screened.verdict, screened.fail_to_pass) == (whole.verdict, whole.fail_to_pass), candidate.key
            assert whole.tests_run is RunScope.FULL
            scopes.append(screened.tests_run)
    assert RunScope.NONE in scopes, "no candidate was rejected without a run"
    assert scopes[-1] is RunScope.SELECTED, "the harmless change was not decided on the selected tests"


def _harmless_change(root) -> Candidate:
    """A change inside merge() that no test can notice: only the selected run happens."""
    path = "toolz/dicttoolz.py"
    before = (root / path).read_text()
    after = before.replace("    rv = factory()\n    for d in dicts:", "    rv = factory()\n    rv.update({})\n    for d in dicts:", 1)
    assert after != before
    return Candidate(file=path, qualname="merge", kind="drop_statement", line=37,
                     bug_diff=unified_diff(path, before, after), fix_diff=unified_diff(path, after, before),
                     original_source=before, mutated_source=after)
