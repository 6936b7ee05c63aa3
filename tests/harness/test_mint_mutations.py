"""Every mutation kind on small snippets: what it changes, that the result compiles,
that the fix diff restores the original, and that candidate order is fixed by the seed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from swerve.harness.mutations import KINDS, generate_candidates, is_mutable_file, mutate_source

SNIPPET = '''\
def clamp(value, low, high):
    """Keep value within [low, high]."""
    if value < low:
        return low
    if value > high and high is not None:
        return high
    return value


def total(items, start=0):
    result = start
    for item in items:
        result += item
    return result * 1


def window(seq, size):
    out = []
    for i in range(len(seq) - size + 1):
        out.append(seq[i:i + size])
    return out


def sign(x):
    if x >= 0:
        label = "plus"
    else:
        label = "minus"
    return label if x != 0 else "zero"


def enabled(flags):
    strict = True
    return flags.get("on", False) or strict


def pair(a, b):
    return divmod(a, b)
'''


def _by_kind(kind: str):
    return mutate_source(SNIPPET, "pkg/mod.py", kinds=[kind])


def test_at_least_eight_kinds():
    assert len(KINDS) >= 8


@pytest.mark.parametrize(
    "kind, removed, added",
    [
        ("flip_comparison", "    if value < low:", "    if value >= low:"),
        ("boolean_operator", "    if value > high and high is not None:", "    if value > high or high is not None:"),
        ("arithmetic_operator", "        result += item", "        result -= item"),
        ("invert_condition", "    if value < low:", "    if not value < low:"),
        ("drop_guard_clause", "    if value < low:", None),
        ("drop_statement", "    result = start", None),
        ("swap_arguments", "    return divmod(a, b)", "    return divmod(b, a)"),
        ("flip_boolean_constant", "    strict = True", "    strict = False"),
    ],
)
def test_kind_changes_the_expected_line(kind, removed, added):
    candidates = _by_kind(kind)
    assert candidates, kind
    diffs = [c.bug_diff for c in candidates]
    assert any(f"\n-{removed}\n" in d and (added is None or f"\n+{added}\n" in d) for d in diffs), diffs[:3]


def test_swap_branches_swaps_if_else_and_ternary():
    sources = [c.mutated_source for c in _by_kind("swap_branches")]
    swapped = '    if x >= 0:\n        label = "minus"\n    else:\n        label = "plus"\n'
    assert any(swapped in s for s in sources), sources
    assert any('    return "zero" if x != 0 else label' in s for s in sources)


def test_off_by_one_and_slice_bound_shift_by_one():
    offs = [c.mutated_source for c in _by_kind("off_by_one")]
    assert any("range(len(seq) - size + 2)" in s or "range(len(seq) - size + 0)" in s for s in offs)
    slices = [c.mutated_source for c in _by_kind("slice_bound")]
    assert any("seq[i + 1:i + size]" in s or "seq[i - 1:i + size]" in s or "seq[i:(i + size) + 1]" in s
               or "seq[i:(i + size) - 1]" in s for s in slices), slices


@pytest.mark.parametrize("kind", KINDS)
def test_every_candidate_compiles_and_records_where_it_is(kind):
    for candidate in _by_kind(kind):
        compile(candidate.mutated_source, "m.py", "exec")
        assert candidate.mutated_source != SNIPPET
        assert candidate.kind == kind
        assert candidate.qualname in {"clamp", "total", "window", "sign", "enabled", "pair"}
        assert candidate.lines_changed >= 1


def test_docstrings_are_never_dropped():
    for candidate in _by_kind("drop_statement"):
        assert '"""Keep value within [low, high]."""' in candidate.mutated_source


def test_fix_diff_restores_the_original(tmp_path: Path):
    candidate = _by_kind("flip_comparison")[0]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    target = tmp_path / "pkg" / "mod.py"
    target.parent.mkdir()
    target.write_text(SNIPPET)
    (tmp_path / "bug.diff").write_text(candidate.bug_diff)
    (tmp_path / "fix.diff").write_text(candidate.fix_diff)
    subprocess.run(["git", "apply", "bug.diff"], cwd=tmp_path, check=True)
    assert target.read_text() == candidate.mutated_source
    subprocess.run(["git", "apply", "fix.diff"], cwd=tmp_path, check=True)
    assert target.read_text() == SNIPPET


def _repo(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text(SNIPPET)
    (tmp_path / "pkg" / "b.py").write_text(SNIPPET.replace("def ", "def b_"))
    (tmp_path / "pkg" / "tests").mkdir()
    (tmp_path / "pkg" / "tests" / "test_a.py").write_text("def test_x():\n    assert 1 < 2\n")
    (tmp_path / "setup.py").write_text("def f(x):\n    return x < 1\n")
    return tmp_path


def test_candidates_are_deterministic_spread_and_deduplicated(tmp_path: Path):
    root = _repo(tmp_path)
    first = [(c.file, c.key) for c in generate_candidates(root, seed=3)]
    again = [(c.file, c.key) for c in generate_candidates(root, seed=3)]
    other = [(c.file, c.key) for c in generate_candidates(root, seed=4)]
    assert first == again
    assert first != other
    assert len({key for _, key in first}) == len(first)
    assert {f for f, _ in first[:2]} == {"pkg/a.py", "pkg/b.py"}
    assert all(not f.startswith("pkg/tests") and f != "setup.py" for f, _ in first)


def test_include_and_kinds_restrict(tmp_path: Path):
    root = _repo(tmp_path)
    picked = list(generate_candidates(root, seed=0, kinds=["swap_arguments"], include=["pkg/b.py"]))
    assert picked and all(c.file == "pkg/b.py" and c.kind == "swap_arguments" for c in picked)
    with pytest.raises(ValueError, match="unknown mutation kind"):
        list(generate_candidates(root, kinds=["nonsense"]))


def test_test_and_packaging_files_are_not_mutable():
    assert is_mutable_file("pkg/core.py")
    assert not is_mutable_file("pkg/tests/test_core.py")
    assert not is_mutable_file("tests/helpers.py")
    assert not is_mutable_file("setup.py")
    assert not is_mutable_file("docs/conf.py")
    assert not is_mutable_file("conftest.py")
