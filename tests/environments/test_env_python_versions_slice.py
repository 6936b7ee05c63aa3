"""Every row of the genuine SWE-bench slice (../shared/swebench-slice) gets an offline
instance image with the Python its official spec names, its pinned packages and the
repository at the row's base commit, from the slice's shallow bare repositories."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from swerve.environments.images import ensure_instance_image
from swerve.harness.tasks import load_tasks

SLICE = Path(os.environ.get("SWERVE_SWEBENCH_SLICE", Path(__file__).resolve().parents[3] / "shared" / "swebench-slice"))
IMPORTS = {"sympy/sympy": "sympy", "pallets/flask": "flask", "psf/requests": "requests", "pytest-dev/pytest": "pytest"}


def _slice_tasks(tmp_path: Path):
    rows = [json.loads(line) for line in (SLICE / "rows.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:
        row["repo_source"] = (SLICE / "repos" / f"{row['repo'].replace('/', '__')}.git").resolve().as_uri()
    path = tmp_path / "slice.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows, load_tasks(str(path))


@pytest.mark.docker
@pytest.mark.slow
def test_every_slice_row_builds_with_its_own_python_at_its_base_commit(docker_client, tmp_path):
    rows, tasks = _slice_tasks(tmp_path)
    published = {row["instance_id"]: row["base_commit"] for row in rows}
    assert len(tasks) == 8
    timings = {}
    for task in tasks:
        assert task.python in ("3.9", "3.11"), (task.instance_id, task.python)
        started = time.monotonic()
        ref = ensure_instance_image(task, client=docker_client)
        first = time.monotonic() - started
        started = time.monotonic()
        again = ensure_instance_image(task, client=docker_client)
        timings[task.instance_id] = {"first_s": round(first, 1), "cached_before": ref.cached,
                                     "warm_s": round(time.monotonic() - started, 2)}
        assert again.cached and again.id == ref.id
        module = IMPORTS[task.repo]
        script = (f"python --version; git -C /testbed rev-parse HEAD; "
                  f"cd /tmp && python -c 'import {module}; print({module}.__name__)'")
        output = docker_client.containers.run(ref.tag, ["bash", "-c", script], remove=True, user="swerve",
                                              network_disabled=True, network_mode="none").decode().split()
        assert output[:2] == ["Python", output[1]] and output[1].startswith(f"{task.python}."), (task.instance_id, output)
        assert output[2] == published[task.instance_id] == ref.base_commit, task.instance_id
        assert output[3] == module, (task.instance_id, output)
    print("slice image builds:", json.dumps(timings))
