"""The test log swerve stores (test_output.txt), in the shape SWE-bench's grader reads.

swerve grades from JUnit and nonce-framed output; the stored log is for people
and for SWE-bench's own tooling: `swebench.harness.grading.get_logs_eval` takes
the text between `>>>>> Start Test Output` and `>>>>> End Test Output`, runs the
row's parser over it, and since 5.x cross-checks a `>>>>> Test Exit Code: N` line.

swerve's nonce markers become those plain markers; any plain marker the code
under test printed itself is defused first, so the stored log cannot be made to
look resolved to a re-grader by a patch that prints a fake end marker.
"""

from __future__ import annotations

START_TEST_OUTPUT = ">>>>> Start Test Output"
END_TEST_OUTPUT = ">>>>> End Test Output"
TEST_EXIT_CODE = ">>>>> Test Exit Code"
DEFUSED = "[marker printed by the code under test] "

_START_TOKEN = "\x00swerve-start\x00"
_END_TOKEN = "\x00swerve-end\x00"


def _defuse(text: str, markers: tuple[str, ...]) -> str:
    for marker in markers:
        text = text.replace(marker, DEFUSED + marker.replace(">>>>>", ">>>>", 1))
    return text


def official_log(raw: str, start: str, end: str, *, exit_code: int | None = None, command: str = "") -> str:
    """`raw` with its (nonce-carrying) `start`/`end` markers replaced by SWE-bench's,
    the test command's exit code recorded after the first end marker, and `command`
    (what ran) traced first as bash -x would. With exit_code None no exit line is
    added (an eval script that records its own)."""
    text = raw.replace(start, _START_TOKEN).replace(end, _END_TOKEN)
    forged = (START_TEST_OUTPUT, END_TEST_OUTPUT) + ((TEST_EXIT_CODE,) if exit_code is not None else ())
    text = _defuse(text, forged)
    text = text.replace(_START_TOKEN, START_TEST_OUTPUT).replace(_END_TOKEN, END_TEST_OUTPUT)
    if exit_code is not None:
        head, sep, tail = text.partition(END_TEST_OUTPUT)
        if sep:
            tail = tail[1:] if tail.startswith("\n") else tail
            text = f"{head}{END_TEST_OUTPUT}\n{TEST_EXIT_CODE}: {exit_code}\n{tail}"
    if command:
        text = "".join(f"+ {line}\n" for line in command.strip().splitlines()) + text
    return text
