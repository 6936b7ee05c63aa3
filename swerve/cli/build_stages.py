"""Stages of an image build shown while it runs (`images build`, `tasks validate`): read from the
log records that swerve.environments.images and .wheelhouse write when a tier starts and ends."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STAGES = {
    "swerve-rootfs": "bootstrap",
    "swerve-base": "base",
    "wheelhouse": "wheelhouse",
    "swerve-env": "environment",
    "swerve-instance": "instance",
    "swerve-official": "instance (official)",
}
"""Stage name of each tier, by the prefix of its image tag (wheelhouse: its cache key)."""

BUILD_LOGGER = "swerve.environments"


def stage_of(image: str) -> str:
    """The stage a tag such as swerve-rootfs:abc belongs to (the prefix itself when unknown)."""
    prefix = image.split(":", 1)[0]
    return STAGES.get(prefix, prefix)


class BuildStages(logging.Handler):
    """Calls `on_start(stage, image)` and `on_done(stage, image, seconds)` for the build records;
    ignores every other record."""

    def __init__(self, on_start: Callable[[str, str], None], on_done: Callable[[str, str, float], None]):
        super().__init__(level=logging.INFO)
        self._on_start, self._on_done = on_start, on_done

    def emit(self, record: logging.LogRecord) -> None:
        image = getattr(record, "swerve_image", None)
        event = getattr(record, "swerve_event", None)
        if not image:
            return
        if event == "start":
            self._on_start(stage_of(image), image)
        elif event == "done":
            self._on_done(stage_of(image), image, float(getattr(record, "swerve_seconds", 0.0)))


@contextmanager
def build_stages(on_start: Callable[[str, str], None], on_done: Callable[[str, str, float], None]) -> Iterator[None]:
    """Within the block, build records reach the callbacks whatever --verbose / --quiet chose
    (the logger is opened to INFO for this handler; the CLI's own handler keeps its level)."""
    logger = logging.getLogger(BUILD_LOGGER)
    handler = BuildStages(on_start, on_done)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def console_build_stages(console, label: str) -> Iterator[None]:
    """A spinner naming the stage being built under `label` (an instance id), and one line per
    finished tier with its time."""
    with console.status(f"{label}: preparing…") as status:

        def started(stage: str, image: str) -> None:
            status.update(f"{label}: {stage} ({image})…")

        def done(stage: str, image: str, seconds: float) -> None:
            console.print(f"  {label}: {stage} built in {seconds:.1f} s ({image})", highlight=False, soft_wrap=True)
            status.update(f"{label}: building…")

        with build_stages(started, done):
            yield
