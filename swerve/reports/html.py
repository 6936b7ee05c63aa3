"""The static HTML report and the trajectory viewer.

The report is one self-contained file (CSS, JS and the plots as base64 PNG inline)
that opens from disk. Trajectory pages are separate static files next to it,
REPORT_DIR/trajectories/<run>/<instance_id>.html, written while the run is
scanned (one trajectory in memory at a time) and linked from the per-task table.
Every piece of run data is HTML-escaped: trajectories hold model output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from swerve.fileio import atomic_write_text
from swerve.reports.metrics import InstanceMetrics
from swerve.reports.plots import all_plots
from swerve.reports.scan import RunScan
from swerve.reports.taskinfo import TaskInfo
from swerve.reports.tables import all_tables, runs_side_by_side
from swerve.schema import Step, ToolCall, Trajectory

VIEWER_DIR = "trajectories"
MAX_PROBLEMS_SHOWN = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return resources.files("swerve.reports").joinpath("templates", name).read_text(encoding="utf-8")


def safe_name(name: str) -> str:
    """A file name for `name`: unsafe characters replaced, plus a short hash when any were."""
    cleaned = _UNSAFE.sub("_", name)[:120] or "_"
    if cleaned != name:
        cleaned += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return cleaned


def viewer_path(run: str, instance_id: str) -> str:
    """Path of a trajectory page relative to the report's folder."""
    return f"{VIEWER_DIR}/{safe_name(run)}/{safe_name(instance_id)}.html"


# ---------------------------------------------------------------- formatting


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def format_value(value: Any) -> str:
    """Numbers as people read them: rates with three decimals, counts as integers."""
    if _is_missing(value):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.3f}"
    return str(value)


def _sort_key(value: Any) -> str:
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return str(float(value))
    return str(value)


def _cell(value: Any, column: str) -> str:
    text = format_value(value)
    classes = []
    if isinstance(value, str) or column in ("run", "instance_id", "repo", "difficulty", "notes", "path", "message"):
        classes.append("text")
    if isinstance(value, (bool, np.bool_)):
        classes.append("yes" if value else "no")
    if _is_missing(value):
        classes.append("na")
    sort_value = "" if _is_missing(value) else f' data-value="{escape(_sort_key(value))}"'
    class_attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{class_attr}{sort_value}>{escape(text)}</td>"


def html_table(frame: pd.DataFrame, *, table_id: str, links: dict[tuple[str, str], str] | None = None) -> str:
    """A sortable HTML table; with `links`, instance ids link to their trajectory pages."""
    if frame.empty:
        return '<p class="meta">(nothing to show)</p>'
    head = "".join(
        f'<th class="{"text" if frame[c].dtype == object else ""}">{escape(str(c))}</th>' for c in frame.columns
    )
    body: list[str] = []
    columns = list(frame.columns)
    for record in frame.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, record):
            cell = _cell(value, column)
            if links is not None and column == "instance_id":
                href = links.get((str(record[columns.index("run")]), str(value)))
                if href:
                    cell = f'<td class="text"><a href="{escape(quote(href))}">{escape(str(value))}</a></td>'
            cells.append(cell)
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def render_diff(diff: str) -> str:
    """A unified diff as a coloured, escaped <pre>."""
    if not diff.strip():
        return '<p class="meta">(no changes)</p>'
    lines = []
    for line in diff.splitlines():
        if line.startswith(("diff --git", "--- ", "+++ ", "index ", "new file", "deleted file", "rename ", "similarity ")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append(f'<span class="{kind}">{escape(line) or " "}</span>')
    return '<pre class="diff">' + "".join(lines) + "</pre>"


def _pre(text: str) -> str:
    return f"<pre>{escape(text)}</pre>" if text else '<p class="meta">(empty)</p>'


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head>"
        f"<body>{body}<script>{_asset('report.js')}</script></body></html>\n"
    )


def _cards(items: Iterable[tuple[str, Any]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{escape(format_value(value))}</b><span>{escape(label)}</span></div>' for label, value in items
    ) + "</div>"


# ---------------------------------------------------------------- trajectory pages


OPEN_STEPS_UP_TO = 20


def action_text(action: ToolCall) -> str:
    """A tool call as people read it: the tool's name, then each argument; multi-line
    strings (commands, file contents) verbatim rather than as JSON with \\n escapes."""
    lines = [action.name]
    for key, value in action.arguments.items():
        if isinstance(value, str) and "\n" in value:
            lines.append(f"{key}:\n{value}")
        else:
            lines.append(f"{key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines)


def _step_html(step: Step, previous_diff: str, open_: bool) -> str:
    action = step.action
    title = f"Step {step.index}"
    if action is not None:
        title += f" · {action.name}"
    if step.exit_code is not None:
        title += f" · exit {step.exit_code}"
    title += f" · model {step.model_time_s:.2f}s · env {step.env_time_s:.2f}s"
    if step.format_error:
        title += " · format error"
    changed = step.diff != previous_diff
    classes = "step format-error" if step.format_error else "step"
    parts = [f'<details class="{classes}"{" open" if open_ else ""}><summary>{escape(title)}</summary>']
    parts.append('<div class="label">assistant</div>' + _pre(step.assistant))
    if action is not None:
        parts.append('<div class="label">action</div>' + _pre(action_text(action)))
    if step.format_error:
        parts.append('<div class="label">format error</div>' + _pre(step.format_error))
    parts.append('<div class="label">observation</div>' + _pre(step.observation))
    label = "diff after this step" + ("" if changed else " (unchanged)")
    parts.append(f'<div class="label">{escape(label)}</div>' + (render_diff(step.diff) if changed else ""))
    parts.append("</details>")
    return "".join(parts)


def trajectory_page(trajectory: Trajectory, row: InstanceMetrics, info: TaskInfo, report_href: str) -> str:
    """The viewer page of one trajectory: scores, then every step (collapsible), then
    the final and gold patches."""
    head = (
        f'<p class="meta"><a href="{escape(quote(report_href))}">&larr; report</a></p>'
        f"<h1>{escape(trajectory.instance_id)}</h1>"
        f'<p class="meta">run {escape(row.run)} · model {escape(row.model or "?")} · repo {escape(row.repo or "?")}'
        f" · difficulty {escape(row.difficulty)} · exit status {escape(trajectory.exit_status or '?')}</p>"
    )
    cards = _cards(
        [
            ("resolved", row.resolved),
            ("failure class", row.failure_class),
            ("FAIL_TO_PASS passed", row.f2p_fraction),
            ("PASS_TO_PASS kept", row.p2p_fraction),
            ("edit distance", row.edit_distance),
            ("edit distance (norm.)", row.edit_distance_normalised),
            ("patch similarity", row.patch_similarity),
            ("revert rate", row.revert_rate),
            ("steps", row.steps),
            ("tokens", row.total_tokens),
        ]
    )
    parts = [head, cards]
    if row.notes:
        parts.append('<ul class="problems">' + "".join(f"<li>{escape(note)}</li>" for note in row.notes) + "</ul>")
    if info.problem_statement:
        parts.append(f"<details><summary>Problem statement</summary>{_pre(info.problem_statement)}</details>")
    parts.append(
        f"<h2>Steps ({len(trajectory.steps)})</h2>"
        '<button onclick="setAllDetails(true)">expand all</button><button onclick="setAllDetails(false)">collapse all</button>'
    )
    previous = ""
    for step in trajectory.steps:
        parts.append(_step_html(step, previous, len(trajectory.steps) <= OPEN_STEPS_UP_TO))
        previous = step.diff
    parts.append("<h2>Final patch</h2>" + render_diff(trajectory.final_patch))
    if info.gold_patch:
        parts.append("<h2>Gold patch</h2>" + render_diff(info.gold_patch))
    return _page(f"{trajectory.instance_id} — {row.run}", "".join(parts))


class TrajectoryPages:
    """A scan callback that writes each trajectory's viewer page as it streams past,
    and remembers the links for the per-task table."""

    def __init__(self, report_path: str | Path) -> None:
        self.report_path = Path(report_path)
        self.links: dict[tuple[str, str], str] = {}

    def __call__(self, trajectory: Trajectory, row: InstanceMetrics, info: TaskInfo) -> None:
        relative = viewer_path(row.run, trajectory.instance_id)
        target = self.report_path.parent / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        report_href = "../../" + self.report_path.name
        target.write_text(trajectory_page(trajectory, row, info, report_href), encoding="utf-8")
        self.links[(row.run, trajectory.instance_id)] = relative


# ---------------------------------------------------------------- the report


def report_html(
    scans: Sequence[RunScan],
    *,
    links: dict[tuple[str, str], str] | None = None,
    samples: int = 2000,
    seed: int = 0,
    tables: dict[str, pd.DataFrame] | None = None,
) -> str:
    tables = tables if tables is not None else all_tables(scans, samples=samples, seed=seed)
    names = ", ".join(scan.name for scan in scans)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>swerve report: {escape(names)}</h1>",
        f'<p class="meta">{escape(created)} · '
        + " · ".join(f"{escape(scan.name)}: {escape(str(scan.path))}" for scan in scans)
        + "</p>",
    ]
    cards = []
    for run in tables["runs"].to_dict("records"):
        cards.append((f"{run['run']} resolved rate", run["resolved_rate"]))
        cards.append((f"{run['run']} resolved", f"{run['resolved']}/{run['scored']}"))
    parts.append(_cards(cards))
    problem_count = len(tables["problems"])
    if problem_count:
        items = "".join(
            f"<li>{escape(str(record.run))}: {escape(str(record.path))}"
            f"{':' + str(int(record.line)) if not _is_missing(record.line) else ''}: {escape(str(record.message))}</li>"
            for record in tables["problems"].head(MAX_PROBLEMS_SHOWN).itertuples()
        )
        if problem_count > MAX_PROBLEMS_SHOWN:
            items += f"<li>… and {problem_count - MAX_PROBLEMS_SHOWN} more (swerve report --table problems)</li>"
        parts.append(f'<h2>Problems ({problem_count})</h2><ul class="problems">{items}</ul>')
    parts.append("<h2>Runs</h2>" + html_table(runs_side_by_side(tables["runs"]), table_id="runs"))
    if not tables["compare"].empty:
        parts.append(
            f"<h2>Compared with {escape(scans[0].name)}</h2>"
            f'<p class="meta">difference in resolved rate on the instances both runs scored; '
            f"{int(samples)}-sample paired bootstrap 95% interval (seed {int(seed)})</p>"
            + html_table(tables["compare"], table_id="compare")
        )
    plots = all_plots(scans, tables["repos"])
    parts.append(
        '<h2>Plots</h2><div class="plots">'
        + "".join(
            f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{png}"><figcaption>{escape(caption)}</figcaption></figure>'
            for caption, png in plots.items()
        )
        + "</div>"
    )
    parts.append("<h2>By repository</h2>" + html_table(tables["repos"], table_id="repos"))
    parts.append("<h2>By difficulty</h2>" + html_table(tables["difficulty"], table_id="difficulty"))
    parts.append(
        f"<h2>Tasks ({len(tables['tasks'])})</h2>"
        '<input class="filter" data-table="tasks" placeholder="filter rows (instance, repo, failure class...)">'
        + html_table(tables["tasks"], table_id="tasks", links=links)
    )
    return _page(f"swerve report: {names}", "".join(parts))


def write_html_report(
    scans: Sequence[RunScan],
    path: str | Path,
    *,
    links: dict[tuple[str, str], str] | None = None,
    samples: int = 2000,
    seed: int = 0,
    tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the report to `path` atomically. Pass the `links` of the TrajectoryPages
    used while scanning so the per-task table links to the trajectory pages."""
    path = Path(path)
    atomic_write_text(path, report_html(scans, links=links, samples=samples, seed=seed, tables=tables))
    return path
