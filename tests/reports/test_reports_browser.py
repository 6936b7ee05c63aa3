"""A real browser opens the HTML report and a trajectory page from disk (file://).

Headless Chromium (Debian's `chromium` package) renders them; the test reads the
rendered DOM (run names, numbers, a plot image, a diff) and saves screenshots in
the test's tmp dir. In CI (CI=true) a missing chromium fails the test; elsewhere it
skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from swerve.reports.html import TrajectoryPages, write_html_report
from swerve.reports.scan import scan_run
from swerve.reports.taskinfo import load_task_infos


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (apt-get install -y chromium; `make test` installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _browse(binary: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", *extra, url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow
def test_report_and_trajectory_page_render_in_chromium(two_runs, tmp_path):
    binary = _chromium()
    tasks_file, baseline, better = two_runs
    tasks = load_task_infos(tasks_file)
    report = tmp_path / "site" / "report.html"
    pages = TrajectoryPages(report)
    scans = [scan_run(baseline, tasks, on_trajectory=pages), scan_run(better, tasks, on_trajectory=pages)]
    write_html_report(scans, report, links=pages.links)
    profile = tmp_path / "chromium-profile"

    dom = _browse(binary, report.as_uri(), profile, "--dump-dom").stdout
    assert "<h1>swerve report: baseline, better</h1>" in dom
    rate = scans[1].metrics["resolved_rate"]
    assert f"{rate:.3f}" in dom
    assert dom.count('src="data:image/png;base64,') == 4
    assert 'href="trajectories/better/' in dom

    resolved = next(row for row in scans[1].rows if row.resolved and row.changed_lines)
    page = report.parent / pages.links[("better", resolved.instance_id)]
    page_dom = _browse(binary, page.as_uri(), profile, "--dump-dom").stdout
    assert f"<h1>{resolved.instance_id}</h1>" in page_dom
    assert '<span class="add">+    return value *' in page_dom
    assert "<details class=\"step\" open" in page_dom

    for name, url in (("report.png", report.as_uri()), ("trajectory.png", page.as_uri())):
        shot = tmp_path / name
        _browse(binary, url, profile, f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars")
        assert _png_size(shot) == (1280, 1600)
        assert shot.stat().st_size > 20_000  # a blank page compresses to a few kilobytes
