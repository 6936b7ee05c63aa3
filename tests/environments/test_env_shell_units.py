"""Unit tests for the persistent shell's pieces (no container needed)."""

from __future__ import annotations

import subprocess

from swerve.environments.shell import OutputCapture, ansi_c_quote


def test_ansi_c_quote_round_trips_through_bash():
    nasty = "echo 'it''s' \"$HOME\" \\ back\\slash\n\ttab `x` $(y) \x01 ünï"
    out = subprocess.run(["bash", "-c", f"printf '%s' {ansi_c_quote(nasty)}"], capture_output=True)
    assert out.stdout.decode() == nasty


def test_capture_keeps_everything_under_the_limit():
    capture = OutputCapture(100, None)
    capture.add(b"a" * 60)
    capture.add(b"b" * 40)
    text, truncated = capture.finish()
    assert text == "a" * 60 + "b" * 40 and not truncated


def test_capture_keeps_head_and_tail_and_spools_the_rest(tmp_path):
    capture = OutputCapture(100, str(tmp_path))
    data = b"".join(f"{i:05d}\n".encode() for i in range(1000))
    for start in range(0, len(data), 333):
        capture.add(data[start : start + 333])
    text, truncated = capture.finish()
    assert truncated and capture.total == len(data)
    assert text.startswith("00000\n") and text.endswith("00999\n")
    assert f"{len(data) - 100} bytes cut" in text
    assert open(capture.spool_path, "rb").read() == data


def test_capture_spools_at_most_its_spool_limit(tmp_path):
    capture = OutputCapture(100, str(tmp_path), spool_limit=1000)
    for _ in range(100):
        capture.add(b"y" * 333)
    text, truncated = capture.finish()
    assert truncated and capture.total == 33300
    assert len(open(capture.spool_path, "rb").read()) == 1000
    assert "its first 1000 bytes" in text


def test_a_commands_spool_is_deleted_with_the_next_command_and_on_stop(tmp_path):
    import os

    from swerve.environments.local import PipeTransport
    from swerve.environments.shell import ShellSession

    session = ShellSession(
        lambda: PipeTransport(["bash", "--noprofile", "--norc"], cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}),
        lambda _pid: None, output_limit=1000, default_timeout=30, spool_dir=str(tmp_path), spool_limit=5000,
    )
    try:
        big = session.run("head -c 100000 /dev/zero | tr '\\0' x")
        assert big.truncated and big.output_bytes == 100000
        assert os.path.getsize(big.full_output_path) == 5000
        assert session.run("echo next").output.strip() == "next"
        assert not os.path.exists(big.full_output_path)
        last = session.run("head -c 50000 /dev/zero")
        assert os.path.exists(last.full_output_path)
    finally:
        session.stop()
    assert not os.path.exists(last.full_output_path)


def test_a_container_is_an_orphan_only_when_its_owner_died_here():
    """Owner pid, host and PID namespace labels: a dead pid means an orphan only on this
    host and in this PID namespace (the same number elsewhere is another process)."""
    import subprocess

    from swerve.environments.docker import LABEL_HOST, LABEL_OWNER, LABEL_PIDNS, is_orphan, owner_labels

    gone = subprocess.Popen(["true"])
    gone.wait()
    assert is_orphan(owner_labels(gone.pid))
    assert not is_orphan(owner_labels())
    assert not is_orphan({**owner_labels(gone.pid), LABEL_HOST: "elsewhere/42"})
    assert not is_orphan({**owner_labels(gone.pid), LABEL_PIDNS: "pid:[1]"})
    assert not is_orphan({LABEL_OWNER: str(gone.pid)}), "no host or namespace: from an older swerve, kept"
    assert owner_labels()[LABEL_PIDNS].startswith("pid:[")
