"""Resolve a genuine SWE-bench row into the Task fields of its official environment.

See the package docstring for what each field means. Minted tasks and rows that
bring their own environment (a test_cmd or install_cmd, or a 5.x eval_script)
are left exactly as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from swerve.harness.swebench import requirements as reqs
from swerve.harness.swebench.directives import directives_for
from swerve.harness.swebench.specs import (
    SpecError,
    environment_yml_paths,
    log_parser_name,
    provenance,
    repo_install_command,
    requirements_paths,
    spec_for,
)
from swerve.schema import Task


def is_genuine_row(task: Task) -> bool:
    """A SWE-bench row as published: it names an environment-setup commit and brings
    neither its own commands nor a 5.x eval script (and was not resolved already)."""
    return bool(
        task.environment_setup_commit.strip()
        and not task.test_cmd.strip()
        and not task.install_cmd.strip()
        and not task.eval_script.strip()
        and not task.spec_source.strip()
    )


@lru_cache(maxsize=256)
def _file_requirements(repo: str, repo_source: str, commit: str, instance_id: str, kind: str) -> tuple[tuple[str, ...], str]:
    """(specifiers, where they came from) for a spec whose packages name a file."""
    reader = reqs.open_commit(repo_source, commit, instance_id=instance_id)
    if kind == "requirements.txt":
        paths = requirements_paths(repo)
        if not paths:
            raise SpecError(f"{instance_id}: the spec for {repo} names requirements.txt but SWE-bench lists no "
                            "requirements path for the repository")
        text, path = reqs.requirements_text(reader, paths)
        found = reqs.specifiers(reqs.replace_yanked(text))
        return tuple(found), f"{path}@{commit[:12]}"
    for path in environment_yml_paths(repo):
        text = reader.read(path)
        if text is not None:
            return tuple(reqs.environment_yml_requirements(text)), f"{path}@{commit[:12]} (conda environment as pip specifiers)"
    raise SpecError(f"{instance_id}: none of {', '.join(environment_yml_paths(repo))} exists at "
                    f"environment_setup_commit {commit[:12]} in {repo_source!r}")


def environment_requirements(task: Task, spec: dict) -> tuple[list[str], str]:
    """The row's pip specifiers in install order (later pins win) and their provenance."""
    packages = (spec.get("packages") or "").strip()
    found: list[str] = []
    origin = ""
    if packages in ("requirements.txt", "environment.yml") and _in_official_image(task):
        origin = f"{packages} not read: the row runs in its official image, which holds its environment"
    elif packages in ("requirements.txt", "environment.yml"):
        from_file, origin = _file_requirements(
            task.repo, task.repo_source, task.environment_setup_commit.strip(), task.instance_id, packages
        )
        found.extend(from_file)
    elif packages:
        found.extend(reqs.conda_packages(packages))
        origin = "packages"
    found.extend(spec.get("pip_packages") or [])
    return reqs.later_pins_win(found), origin


def _in_official_image(task: Task) -> bool:
    """The row runs in SWE-bench's prebuilt image (--images official / $SWERVE_IMAGES) and its
    source is remote: reading its requirements would clone it for nothing (or fail offline)."""
    if reqs.local_git_dir(task.repo_source) is not None:
        return False
    from swerve.environments.official_images import uses_official_image

    try:
        return uses_official_image(task)
    except Exception:
        return False


def apply_spec(task: Task) -> Task:
    """A copy of `task` with its official environment's fields; SpecError when no spec
    covers it or its requirements cannot be read from its repository."""
    spec = spec_for(task.repo, task.version, instance_id=task.instance_id)
    test_cmd = (spec.get("test_cmd") or "").strip()
    if not test_cmd:
        raise SpecError(f"{task.instance_id}: SWE-bench's spec for {task.repo} {task.version} names no test command; "
                        "give the row a test_cmd")
    requirements, origin = environment_requirements(task, spec)
    where = f"{provenance()} specs[{task.repo}][{task.version}]"
    if origin.startswith(("requirements.txt", "environment.yml")):
        where += f"; {origin}"
    elif origin and origin != "packages":
        where += f"; requirements {origin} from {task.repo_source}"
    pre_install = [c for c in [repo_install_command(task.repo)] if c] + list(spec.get("pre_install") or [])
    update = {
        "python": task.python if task.python.strip() not in ("", "3") else str(spec["python"]),
        "pre_install": pre_install,
        "install_cmd": spec.get("install") or "",
        "env_requirements": requirements,
        "test_requirements": [],
        "eval_commands": list(spec.get("eval_commands") or []),
        "test_cmd": test_cmd,
        "test_directives": directives_for(task.repo, task.test_patch),
        "log_parser": task.log_parser or log_parser_name(task.repo),
        "spec_source": where,
        "spec_error": "",
    }
    return task.model_copy(update=update)


def resolve_rows(tasks: Iterable[Task]) -> list[Task]:
    """Each genuine row with its spec applied; a row no spec covers keeps its fields and
    gets `spec_error` (one line naming the row and the fix), so the others still run."""
    out = []
    for task in tasks:
        if not is_genuine_row(task):
            out.append(task)
            continue
        try:
            out.append(apply_spec(task))
        except SpecError as exc:
            out.append(task.model_copy(update={"spec_error": str(exc)}))
    return out
