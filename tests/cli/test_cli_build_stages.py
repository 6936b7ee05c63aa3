"""Stages of image builds shown by `images build` and `tasks validate`, read from the build log records."""

from __future__ import annotations

import io
import logging

import docker
from rich.console import Console

from swerve.cli.build_stages import build_stages, console_build_stages, stage_of
from swerve.environments import images


def test_each_tier_has_its_stage_name():
    assert [stage_of(t) for t in ("swerve-rootfs:1", "swerve-base:2", "wheelhouse:k", "swerve-env:3",
                                  "swerve-instance:4")] == ["bootstrap", "base", "wheelhouse", "environment", "instance"]


class _NoImages:
    """A docker client without any image: every tier is built."""

    class images:  # noqa: N801
        @staticmethod
        def get(tag):
            raise docker.errors.ImageNotFound(tag)


def test_a_tier_build_reports_its_start_and_end_even_when_logging_is_quiet(tmp_path, monkeypatch):
    monkeypatch.setenv("SWERVE_HOME", str(tmp_path))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # as after `swerve --quiet`
    events = []
    try:
        with build_stages(lambda stage, image: events.append(("start", stage, image)),
                          lambda stage, image, seconds: events.append(("done", stage, image, seconds >= 0))):
            image_id, cached = images._ensure_tier(_NoImages(), "swerve-rootfs:abc", lambda: "sha256:1")
    finally:
        root.setLevel(level)
    assert (image_id, cached) == ("sha256:1", False)
    assert events == [("start", "bootstrap", "swerve-rootfs:abc"), ("done", "bootstrap", "swerve-rootfs:abc", True)]


def test_records_outside_the_block_and_other_records_are_not_reported():
    events = []
    logger = logging.getLogger("swerve.environments.images")
    with build_stages(lambda *a: events.append(a), lambda *a: events.append(a)):
        logger.warning("kept swerve-env:1: in use")
    logger.info("building x", extra={"swerve_image": "swerve-base:1", "swerve_event": "start"})
    assert events == []


def test_console_names_each_finished_stage_with_its_time():
    out = io.StringIO()
    console = Console(file=out, width=200)
    logger = logging.getLogger("swerve.environments.wheelhouse")
    with console_build_stages(console, "toolz-1"):
        logger.info("building", extra={"swerve_image": "wheelhouse:k1", "swerve_event": "start"})
        logger.info("built", extra={"swerve_image": "wheelhouse:k1", "swerve_event": "done", "swerve_seconds": 2.5})
    assert "toolz-1: wheelhouse built in 2.5 s (wheelhouse:k1)" in out.getvalue()
