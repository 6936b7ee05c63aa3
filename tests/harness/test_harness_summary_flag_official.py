"""pytest's short summary as swerve asks for it (hidden_tests.SUMMARY_FLAG, rows without their
own test command) gives SWE-bench's log parsers what `-rA` gives them: a real pytest run of a
module with every outcome, parsed by the official parsers in both forms."""

from __future__ import annotations

import subprocess
import sys

import pytest

swebench_parsers = pytest.importorskip("swebench.harness.log_parsers")

MODULE = '''
import pytest

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown")

def test_pass():
    pass

def test_fail():
    assert False

def test_teardown_error(bad_teardown):
    pass

@pytest.mark.skip(reason="no")
def test_skip():
    pass

@pytest.mark.xfail
def test_xfail():
    assert False

@pytest.mark.xfail
def test_xpass():
    pass
'''


def _log(tmp_path, flag: str) -> str:
    (tmp_path / "test_m.py").write_text(MODULE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", flag, "test_m.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.mark.parametrize("parser", ["parse_log_pytest", "parse_log_pytest_options", "parse_log_pytest_v2"])
def test_the_summary_flag_reads_as_dash_ra_to_swebench_parsers(tmp_path, parser):
    from swerve.harness.hidden_tests import SUMMARY_FLAG

    parse = swebench_parsers.PARSER_REGISTRY[parser]
    full = parse(_log(tmp_path, "-rA"), None)
    short = parse(_log(tmp_path, SUMMARY_FLAG), None)
    assert full["test_m.py::test_teardown_error"] != "PASSED" or parser == "parse_log_pytest_v2"
    assert short == full


def test_the_flags_swerve_adds_keep_the_summary_swebench_parsers_read(tmp_path):
    """The log swerve stores is made with the summary flag and the native traceback
    flag together: the official parser reads from it what it reads from `-rA`."""
    from swerve.harness.hidden_tests import SUMMARY_FLAG, TRACEBACK_FLAG

    parse = swebench_parsers.PARSER_REGISTRY["parse_log_pytest"]
    (tmp_path / "test_m.py").write_text(MODULE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", SUMMARY_FLAG, TRACEBACK_FLAG,
                           "test_m.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert parse(done.stdout, None) == parse(_log(tmp_path, "-rA"), None)
    assert "AssertionError" in done.stdout, "the native traceback still names the failure"
