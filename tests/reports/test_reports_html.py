"""The HTML report is one self-contained file; run data is escaped."""

from __future__ import annotations

import re

from swerve.reports.html import TrajectoryPages, render_diff, safe_name, trajectory_page, write_html_report
from swerve.reports.metrics import InstanceMetrics
from swerve.reports.scan import scan_run
from swerve.reports.taskinfo import TaskInfo, load_task_infos
from swerve.schema import Step, ToolCall, Trajectory


def test_report_is_self_contained_with_plots(two_runs, tmp_path):
    tasks_file, baseline, better = two_runs
    tasks = load_task_infos(tasks_file)
    pages = TrajectoryPages(tmp_path / "out" / "report.html")
    scans = [scan_run(baseline, tasks, on_trajectory=pages), scan_run(better, tasks, on_trajectory=pages)]
    html = write_html_report(scans, tmp_path / "out" / "report.html", links=pages.links).read_text()
    assert html.count('src="data:image/png;base64,') == 4
    external = re.findall(r'(?:src|href)="(?!data:|trajectories/)([^"]*)"', html)
    assert external == []
    assert "<link" not in html and "<script src" not in html
    for (run, instance_id), relative in pages.links.items():
        assert (tmp_path / "out" / relative).is_file()
    assert len(pages.links) == 60


def test_model_output_is_escaped():
    hostile = '<script>alert("x")</script>'
    trajectory = Trajectory(
        instance_id="a/b<c>",
        steps=[Step(index=0, assistant=hostile, action=ToolCall(name="bash", arguments={"command": hostile}),
                    observation=hostile, diff=f"--- a/f\n+++ b/f\n@@ -1 +1 @@\n-{hostile}\n+ok\n")],
        final_patch=f"+{hostile}\n",
    )
    row = InstanceMetrics(run="r", instance_id=trajectory.instance_id, notes=[hostile])
    page = trajectory_page(trajectory, row, TaskInfo(instance_id="x", problem_statement=hostile), "../../r.html")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page


def test_diff_lines_are_coloured_by_kind():
    html = render_diff("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-old\n+new\n same\n")
    assert '<span class="del">-old</span>' in html
    assert '<span class="add">+new</span>' in html
    assert '<span class="hunk">@@ -1 +1 @@</span>' in html
    assert '<span class="file">+++ b/f</span>' in html


def test_safe_names_do_not_collide_or_escape_the_folder():
    assert safe_name("django__django-1") == "django__django-1"
    assert "/" not in safe_name("../../etc/passwd")
    assert safe_name("a/b") != safe_name("a_b")


def test_actions_show_multiline_arguments_verbatim():
    from swerve.reports.html import action_text

    text = action_text(ToolCall(name="bash", arguments={"command": "cat <<EOF\nhi\nEOF", "timeout": 5, "view_range": [1, 2]}))
    assert text == "bash\ncommand:\ncat <<EOF\nhi\nEOF\ntimeout: 5\nview_range: [1, 2]"
