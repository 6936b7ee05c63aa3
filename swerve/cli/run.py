"""`swerve run` (an agent on many tasks) and `swerve teach` (resolved runs as SFT data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from swerve.cli import app
from swerve.cli.agent_options import CONFIG_OPTION, SET_OPTION, agent_config_from_cli
from swerve.cli.options import IMAGES_HELP, apply_images_option, backend_option, instance_ids_option, split_instance_ids

console = Console(stderr=True)

POLICY_HELP = (
    "which policy acts: oracle, oracle-detours, oracle-stochastic:p=P, noop, replay:TRAJECTORIES.jsonl, "
    "or a model backend spec (see docs/agents.md)"
)


def policy_factory(spec: str, *, seed: int | None = None, options: dict[str, Any] | None = None):
    """A function task -> policy for `spec`, checked before any task runs.

    Scripted policies (oracle, noop, replay) are built per task. A model-backed
    policy is built once, here, and shared by every episode: loading a model per
    task would be wasteful, and a bad spec fails before any environment starts.
    """
    from swerve.agents.policies import SCRIPTED_KINDS, make_policy

    options = {k: v for k, v in (options or {}).items() if v is not None}
    if seed is not None:
        options["seed"] = seed
    kind, _, argument = spec.partition(":")
    if kind == "replay" and argument and not Path(argument).exists():
        raise ValueError(f"--policy {spec}: {argument} does not exist; give a trajectories.jsonl file")
    if kind not in SCRIPTED_KINDS:
        shared = make_policy(spec, **options)
        return lambda task: shared
    return lambda task: make_policy(spec, task=task, **options)


def _guarded(action):
    """Run `action`; bad input becomes one error line (exit 2), an infrastructure error
    exit 3, SIGINT / SIGTERM a resume hint (exit 130 / 143)."""
    from rich.markup import escape

    from swerve.errors import InfraError, SwerveError
    from swerve.interrupts import exit_code_of, exit_if_armed, signal_name

    try:
        return action()
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted[/] ({signal_name(exc)}): finished trajectories are saved, episodes in "
                      "flight were abandoned; re-run the same command to resume", highlight=False)
        exit_if_armed(exit_code_of(exc))
        raise typer.Exit(exit_code_of(exc))
    except (SwerveError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(3 if isinstance(exc, InfraError) else 2)


def _load(tasks: str, instance_ids: list[str] | None, *, policy: str, graded: bool):
    """The tasks, refusing rows that lack what this run needs: FAIL_TO_PASS when the
    episodes are graded, the gold patch for the oracle policies."""
    from swerve.harness.tasks import load_tasks

    required = (["FAIL_TO_PASS"] if graded else []) + (["patch"] if policy.startswith("oracle") else [])
    return load_tasks(tasks, instance_ids=split_instance_ids(instance_ids), require=required)


_TASKS = typer.Option(..., "--tasks", help="task file (JSON/JSONL/parquet) or Hugging Face dataset name")
_POLICY = typer.Option(..., "--policy", help=POLICY_HELP)
_WORKERS = typer.Option(1, "--workers", min=1, help="episodes run in parallel")
_BACKEND = backend_option()
_IDS = instance_ids_option(" to run")
_SEED = typer.Option(None, "--seed", help="seed passed to the policy (sampling, oracle detours); default: the policy's own")
_MAX_STEPS = typer.Option(50, "--max-steps", min=1, help="model turns per episode before it is stopped")
_MAX_TOKENS = typer.Option(None, "--max-tokens", help="prompt+completion tokens per episode (default: no limit)")
_TIME_LIMIT = typer.Option(1800.0, "--time-limit", help="wall-clock seconds per episode")
_CMD_TIMEOUT = typer.Option(120.0, "--command-timeout", help="seconds one shell command may run")
_FORMAT_ERRORS = typer.Option(3, "--max-format-errors", min=1, help="consecutive unparseable turns that end an episode")
_REPEATS = typer.Option(4, "--max-repeats", min=0, help="identical actions in a row that end an episode (0: off)")
_OBS_BYTES = typer.Option(16000, "--observation-bytes", help="observations are cut (head+tail) to this many bytes")
_KEEP_MALFORMED = typer.Option(
    True, "--keep-malformed/--drop-malformed",
    help="keep unparseable turns in the model's history (they are always in the trajectory)",
)
_MODEL_NAME = typer.Option(None, "--model-name", help="model_name_or_path written into predictions.jsonl")
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="show a progress bar")
_IMAGES = typer.Option(None, "--images", metavar="auto|local|official", help=IMAGES_HELP)


@app.command("run")
def run(
    ctx: typer.Context,
    tasks: str = _TASKS,
    policy: str = _POLICY,
    out: Path = typer.Option(Path("runs/agent"), "--out", help="run directory (RUN_DIR); an existing one is resumed"),
    workers: int = _WORKERS,
    evaluate: bool = typer.Option(False, "--evaluate", help="grade the patches and link each trajectory to its report"),
    backend: str = _BACKEND,
    instance_ids: list[str] | None = _IDS,
    seed: int | None = _SEED,
    max_steps: int = _MAX_STEPS,
    max_tokens: int | None = _MAX_TOKENS,
    time_limit: float = _TIME_LIMIT,
    command_timeout: float = _CMD_TIMEOUT,
    max_format_errors: int = _FORMAT_ERRORS,
    max_repeats: int = _REPEATS,
    observation_bytes: int = _OBS_BYTES,
    keep_malformed: bool = _KEEP_MALFORMED,
    model_name: str | None = _MODEL_NAME,
    progress: bool = _PROGRESS,
    images: str | None = _IMAGES,
    attempts: int = typer.Option(
        1, "--attempts", min=1,
        help="trajectories per task, attempt K seeded --seed+K-1 (default seed 0); N > 1 writes "
             "OUT/attempts/RUNID-aK/ run folders, each graded by --evaluate (see docs/attempts.md)",
    ),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] | None = SET_OPTION,
) -> None:
    """Run POLICY on every task; writes trajectories.jsonl and predictions.jsonl into --out.

    Rerunning with the same --out resumes: finished tasks are skipped, infra failures retried.
    With --attempts N, each task gets N independently seeded trajectories (pass@k, selection).
    Example: swerve run --tasks tests/fixtures/toolz_tasks.jsonl --policy oracle --out runs/oracle --evaluate

    Exit status: 0 done; 2 bad input or --out in use by another process; 3 infrastructure
    failures (re-run to retry them); 130 / 143 stopped by SIGINT / SIGTERM (re-run to resume).
    """
    from swerve.agents.batch import run_batch
    from swerve.environments.official_images import with_images

    _guarded(lambda: apply_images_option(images))
    task_list = _guarded(lambda: with_images(_load(tasks, instance_ids, policy=policy, graded=evaluate), images))
    agent = _guarded(lambda: agent_config_from_cli(ctx, config, overrides, {
        "max_steps": ("max_steps", "--max-steps", max_steps),
        "max_total_tokens": ("max_tokens", "--max-tokens", max_tokens),
        "wall_clock_s": ("time_limit", "--time-limit", time_limit),
        "command_timeout_s": ("command_timeout", "--command-timeout", command_timeout),
        "max_format_errors": ("max_format_errors", "--max-format-errors", max_format_errors),
        "max_repeated_actions": ("max_repeats", "--max-repeats", max_repeats),
        "observation_limit_bytes": ("observation_bytes", "--observation-bytes", observation_bytes),
        "keep_malformed_turns": ("keep_malformed", "--keep-malformed/--drop-malformed", keep_malformed),
    }))
    limits = agent.limits
    factory = _guarded(lambda: policy_factory(policy, seed=seed))
    if attempts > 1:
        result = _guarded(lambda: _run_attempts(task_list, policy, factory, attempts, seed, out, workers, backend,
                                                limits, evaluate, model_name, progress, agent=agent, tasks_from=tasks))
        _report(result, len(task_list) * attempts, unit="episodes")
        return
    result = _guarded(lambda: run_batch(
        task_list, factory, out_dir=out, workers=workers, backend=backend,
        limits=limits, evaluate=evaluate, model_name=model_name, progress=progress, policy_spec=policy,
        agent=agent, tasks_from=tasks,
    ))
    _report(result, len(task_list))


def _run_attempts(task_list, policy, factory, attempts, seed, out, workers, backend, limits, evaluate, model_name,
                  progress, agent=None, tasks_from=None):
    """N seeded attempts per task: scripted policies are built per attempt seed; a model
    policy, loaded once, is shared with each attempt's seed set on a copy."""
    from swerve.agents.attempts import reseeded, run_attempts
    from swerve.agents.policies import SCRIPTED_KINDS

    if policy.partition(":")[0] in SCRIPTED_KINDS:
        def factory_for_seed(attempt_seed):
            return policy_factory(policy, seed=attempt_seed)
    else:
        def factory_for_seed(attempt_seed):
            return lambda task: reseeded(factory(task), attempt_seed)
    return run_attempts(
        task_list, factory_for_seed, attempts=attempts, out_dir=out, base_seed=seed or 0, workers=workers,
        backend=backend, limits=limits, evaluate=evaluate, model_name=model_name, progress=progress,
        policy_spec=policy, agent=agent, tasks_from=tasks_from,
    )


@app.command("teach")
def teach(
    ctx: typer.Context,
    tasks: str = _TASKS,
    policy: str = _POLICY,
    out: Path = typer.Option(Path("runs/teach"), "--out", help="run directory; the dataset goes to OUT/teacher/"),
    workers: int = _WORKERS,
    backend: str = _BACKEND,
    instance_ids: list[str] | None = _IDS,
    seed: int | None = _SEED,
    max_steps: int = _MAX_STEPS,
    time_limit: float = _TIME_LIMIT,
    command_timeout: float = _CMD_TIMEOUT,
    tokenizer: str | None = typer.Option(
        None, "--tokenizer",
        help="a Hugging Face tokenizer (name or path) to pre-tokenise rows with input_ids + assistant_masks",
    ),
    model_name: str | None = _MODEL_NAME,
    progress: bool = _PROGRESS,
    attempts: int = typer.Option(1, "--attempts", min=1, help="graded attempts per task (needed by --pairs/--verifier)"),
    pairs: bool = typer.Option(
        False, "--pairs", help="write DPO pairs (resolved vs unresolved attempt of a task, TRL's conversational "
        "prompt/chosen/rejected with tool calls) to OUT/teacher/pairs.parquet; needs --attempts 2+"),
    verifier: bool = typer.Option(
        False, "--verifier", help="write one (trajectory, patch, resolved) row per attempt to "
        "OUT/teacher/verifier.parquet; needs --attempts 2+"),
    max_pairs_per_task: int = typer.Option(4, "--max-pairs-per-task", min=1, help="DPO pairs kept per task"),
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] | None = SET_OPTION,
) -> None:
    """Run POLICY, keep the resolved trajectories, export them as parquet chat rows for SFT.
    With --attempts N --pairs / --verifier: N graded attempts per task, exported as DPO
    pairs and verifier rows instead (docs/attempts.md).

    Example: swerve teach --tasks tests/fixtures/toolz_tasks.jsonl --policy oracle-detours --out runs/teach
    Example: swerve teach --tasks examples/smoke.jsonl --policy oracle-stochastic:p=0.3 --attempts 8 --pairs --verifier

    Exit status: as for `swerve run` (0, 2, 3, 130 / 143).
    """
    from swerve.agents.teach import teach as run_teach

    if (pairs or verifier) != (attempts > 1):
        console.print("[red]error:[/] --pairs and --verifier go with --attempts N (N >= 2), and --attempts with "
                      "one of them; add the missing option", highlight=False)
        raise typer.Exit(2)
    task_list = _guarded(lambda: _load(tasks, instance_ids, policy=policy, graded=True))
    agent = _guarded(lambda: agent_config_from_cli(ctx, config, overrides, {
        "max_steps": ("max_steps", "--max-steps", max_steps),
        "wall_clock_s": ("time_limit", "--time-limit", time_limit),
        "command_timeout_s": ("command_timeout", "--command-timeout", command_timeout),
    }))
    limits = agent.limits
    if attempts > 1:
        factory = _guarded(lambda: policy_factory(policy, seed=seed))
        result = _guarded(lambda: _run_attempts(task_list, policy, factory, attempts, seed, out, workers, backend,
                                                limits, True, model_name, progress, agent=agent, tasks_from=tasks))
        _export_attempt_data(out, pairs, verifier, max_pairs_per_task)
        _report(result, len(task_list) * attempts, unit="episodes")
        return
    loaded_tokenizer = None
    if tokenizer:
        from transformers import AutoTokenizer

        loaded_tokenizer = _guarded(lambda: AutoTokenizer.from_pretrained(tokenizer))
    factory = _guarded(lambda: policy_factory(policy, seed=seed))
    result = _guarded(lambda: run_teach(
        task_list, factory, out_dir=out, tokenizer=loaded_tokenizer,
        workers=workers, backend=backend, limits=limits, model_name=model_name, progress=progress,
        policy_spec=policy, agent=agent, tasks_from=tasks,
    ))
    _report(result.batch, len(task_list))
    console.print(f"kept {len(result.kept)} resolved trajectories -> {result.dataset_path} ({result.rows} rows)")


def _export_attempt_data(out: Path, pairs: bool, verifier: bool, max_pairs_per_task: int) -> None:
    from swerve.agents.preferences import preference_pairs, verifier_rows, write_parquet

    if pairs:
        rows = _guarded(lambda: write_parquet(preference_pairs(out, max_pairs_per_task), out / "teacher" / "pairs.parquet"))
        console.print(f"{rows} DPO pairs -> {out / 'teacher' / 'pairs.parquet'}", highlight=False)
    if verifier:
        rows = _guarded(lambda: write_parquet(verifier_rows(out), out / "teacher" / "verifier.parquet"))
        console.print(f"{rows} verifier rows -> {out / 'teacher' / 'verifier.parquet'}", highlight=False)


def _report(result, total: int, unit: str = "tasks") -> None:
    console.print(
        f"{result.out_dir}: ran {len(result.ran)}, skipped {len(result.skipped)} already finished, "
        f"{len(result.infra_failures)} infra failure(s) of {total} {unit}"
    )
    for instance_id, error in sorted(result.infra_failures.items()):
        console.print(f"  [yellow]{instance_id}[/]: {error} (rerun the same command to retry)", highlight=False)
    for instance_id, error in sorted(result.grading_errors.items()):
        console.print(f"  [yellow]{instance_id}[/]: not graded: {error} (rerun the same command to retry)",
                      highlight=False)
    if result.resolved is not None:
        console.print(f"resolved {len(result.resolved)} of {total}")
    if result.infra_failures or result.grading_errors:
        raise typer.Exit(code=3)
