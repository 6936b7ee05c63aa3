"""SWE-bench 4.x's spec tables, as shipped in swerve/harness/data/swebench_specs.json.

The file is generated from the `swebench` package by
scripts/generate_swebench_specs.py and records which release it came from
(`provenance`); tests/harness/test_harness_swebench_specs.py proves it equal to
that release.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from swerve.errors import TaskFormatError

TABLE_FILE = "swebench_specs.json"


class SpecError(TaskFormatError):
    """A genuine SWE-bench row that swerve cannot give its official environment."""


@lru_cache(maxsize=1)
def spec_table() -> dict[str, Any]:
    """The whole table: provenance, specs, requirements paths, parser names, ..."""
    text = resources.files("swerve.harness").joinpath("data", TABLE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def provenance() -> str:
    """`swebench 4.1.0`: the release the table was generated from."""
    meta = spec_table()["provenance"]
    return f"{meta['package']} {meta['version']}"


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


def spec_for(repo: str, version: str, *, instance_id: str = "") -> dict[str, Any]:
    """The spec of `repo` at `version`, or SpecError naming the row and what is missing."""
    who = f"{instance_id}: " if instance_id else ""
    specs = spec_table()["specs"]
    if repo not in specs:
        raise SpecError(
            f"{who}no SWE-bench spec for repository {repo!r} ({provenance()} covers {len(specs)} Python "
            "repositories); give the row install_cmd/test_cmd/python yourself, or an `image` and `eval_script` "
            "(SWE-bench 5.x rows, --images official)"
        )
    by_version = specs[repo]
    if not version:
        raise SpecError(f"{who}the row has no `version`; SWE-bench's spec for {repo} is chosen by version "
                        f"(known: {', '.join(sorted(by_version, key=_version_key))})")
    if version not in by_version:
        raise SpecError(
            f"{who}no SWE-bench spec for {repo} version {version!r} (known: "
            f"{', '.join(sorted(by_version, key=_version_key))}); fix the row's `version` or give it "
            "install_cmd/test_cmd/python yourself"
        )
    return by_version[version]


def requirements_paths(repo: str) -> list[str]:
    return list(spec_table()["requirements_paths"].get(repo, []))


def environment_yml_paths(repo: str) -> list[str]:
    return list(spec_table()["environment_yml_paths"].get(repo, []))


def log_parser_name(repo: str) -> str:
    """SWE-bench's parser for the repository (`parse_log_pytest` when it names none)."""
    return spec_table()["log_parsers"].get(repo, "parse_log_pytest")


def repo_install_command(repo: str) -> str:
    """A per-repository setup command SWE-bench runs before pre_install (none for Python repos in 4.1.0)."""
    return spec_table()["install"].get(repo, "")


def non_test_extensions() -> list[str]:
    return list(spec_table()["non_test_exts"])


def requirement_replacements() -> list[tuple[str, str | None]]:
    return [(old, new) for old, new in spec_table()["replace_requirements"]]
