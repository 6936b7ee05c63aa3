"""`swerve train rft` (fine-tune on resolved teacher trajectories) and `swerve train rl`
(GRPO on live rollouts from the rollout manager). Both write their settings beside
their outputs: `run_config.json` (the command's arguments) and the trainer's own
config (`rft_config.json` / `config.json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from swerve.cli import app
from swerve.harness.timeouts import TEST_RUN_TIMEOUT_S
from swerve.cli.agent_options import CONFIG_OPTION, SET_OPTION
from swerve.cli.options import backend_option, instance_ids_option, split_instance_ids
from swerve.interrupts import stoppable

console = Console(stderr=True)

train_app = typer.Typer(
    help="Train a model on swerve data: RFT on teacher trajectories, GRPO on live rollouts.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

_MODEL_HELP = ("base model: a local folder (config.json + weights + tokenizer), a name already in the Hugging Face "
               "cache, or `tiny` (swerve's tiny random Qwen3 test model, built on first use)")
_LORA_RANK = typer.Option(16, "--lora-rank", min=1,
                          help="LoRA rank on the attention and MLP projections (16-64 typical)")
_LORA_ALPHA = typer.Option(None, "--lora-alpha", min=1, help="LoRA alpha (default: twice the rank)")
_SEED = typer.Option(0, "--seed", help="random seed of the trainer (and of the sampling policy for rl)")
RL_MAX_STEPS = 30
"""`train rl`'s turns per episode when neither --max-steps nor --config says otherwise."""


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _interrupted(exc: BaseException, what: str) -> NoReturn:
    """SIGINT / SIGTERM: say what was kept, exit 130 / 143."""
    from swerve.interrupts import exit_code_of, exit_if_armed, signal_name

    console.print(f"[yellow]interrupted[/] ({signal_name(exc)}): {what}", soft_wrap=True, highlight=False)
    exit_if_armed(exit_code_of(exc))
    raise typer.Exit(exit_code_of(exc))


def _invocation(ctx: typer.Context) -> dict[str, Any]:
    """The subcommand and every option's value (defaults included), to rerun it exactly."""
    return {"command": f"swerve train {ctx.info_name}", "arguments": dict(ctx.params)}


# -- swerve train rft -----------------------------------------------------------------


@train_app.command("rft")
def rft_command(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help=_MODEL_HELP),
    teacher: Path = typer.Option(
        ..., "--teacher",
        help="teacher trajectories: a `swerve teach --out` directory (its teacher/trajectories.jsonl), "
             "a run directory, or a trajectories .jsonl file; only resolved ones are trained on",
    ),
    out: Path = typer.Option(..., "--out", help="output folder: adapter/, rft_config.json, run_config.json"),
    lora_rank: int = _LORA_RANK,
    lora_alpha: int | None = _LORA_ALPHA,
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", min=0.0, max=1.0, help="dropout on the LoRA input"),
    lr: float = typer.Option(2e-4, "--lr", min=0.0, help="learning rate"),
    epochs: float = typer.Option(1.0, "--epochs", min=0.0, help="passes over the kept trajectories"),
    max_length: int = typer.Option(8192, "--max-length", min=16,
                                   help="tokens per trajectory; longer ones are cut at the end"),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="trajectories per device batch"),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="gradient accumulation steps"),
    allow_unsubmitted: bool = typer.Option(
        False, "--allow-unsubmitted",
        help="also keep resolved trajectories that ended without `submit` (hit a limit with a correct diff)",
    ),
    seed: int = _SEED,
) -> None:
    """Fine-tune a LoRA adapter on resolved teacher trajectories (RFT).

    Rejection sampling keeps the trajectories graded resolved; the loss covers the
    assistant tokens only (TRL SFTTrainer); the adapter goes to OUT/adapter.

    Example: swerve train rft --model tiny --teacher runs/teach --out runs/rft --lora-rank 16
    """
    from swerve.agents.policies import resolve_model_path
    from swerve.rl.rft import RFTConfig, load_teacher_trajectories, train_rft
    from swerve.rl.trainer import save_run_config

    if not teacher.exists():
        _fail(f"--teacher {teacher}: no such file or directory; pass the folder `swerve teach --out` wrote "
              "or a trajectories .jsonl file")
    config = RFTConfig(
        lora_rank=lora_rank, lora_alpha=lora_alpha or 2 * lora_rank, lora_dropout=lora_dropout, learning_rate=lr,
        epochs=epochs, batch_size=batch_size, gradient_accumulation_steps=grad_accum, max_length=max_length,
        seed=seed, require_submitted=not allow_unsubmitted,
    )
    try:
        trajectories = load_teacher_trajectories(teacher)
    except (FileNotFoundError, ValueError) as exc:
        _fail(f"--teacher {teacher}: {exc}")
    model_path = resolve_model_path(model)
    out.mkdir(parents=True, exist_ok=True)
    settings = asdict(config)
    settings["lora_targets"] = list(config.lora_targets)
    save_run_config(out, **_invocation(ctx), model=model_path, teacher=str(teacher), rft=settings)
    console.print(f"RFT on {len(trajectories)} teacher trajectories from {teacher} -> {out}")
    try:
        with stoppable():
            adapter = train_rft(model_path, trajectories, out, config)
    except KeyboardInterrupt as exc:
        _interrupted(exc, f"nothing is saved until training ends; the adapter in {out / 'adapter'} (if any) is "
                          "from an earlier run")
    except OSError as exc:
        _fail(f"--model {model}: cannot load it ({exc}); pass a local folder with config.json, weights and "
              "tokenizer, or a model name already in the Hugging Face cache")
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"[green]adapter saved[/] {adapter} (load with peft.PeftModel.from_pretrained(base, '{adapter}'))")


# -- swerve train rl ------------------------------------------------------------------


_REWARDS = {"binary": "binary_reward", "partial": "partial_credit_reward"}


@train_app.command("rl")
def rl_command(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help=_MODEL_HELP),
    tasks: str = typer.Option(..., "--tasks", help="task file (JSON/JSONL/parquet) or Hugging Face dataset name"),
    out: Path = typer.Option(..., "--out",
                             help="output folder: adapter/, config.json, history, rollouts, run_config.json"),
    group_size: int = typer.Option(8, "--group-size", min=2, help="rollouts per task in one GRPO group"),
    groups_per_step: int = typer.Option(1, "--groups-per-step", min=1, help="groups (tasks) in one update"),
    steps: int = typer.Option(10, "--steps", min=1, help="trainer updates"),
    lora_rank: int = _LORA_RANK,
    lora_alpha: int | None = _LORA_ALPHA,
    lr: float = typer.Option(1e-5, "--lr", min=0.0, help="learning rate"),
    kl_coef: float = typer.Option(0.0, "--kl-coef", min=0.0,
                                  help="weight of the KL penalty to the base model (0: off)"),
    clip_epsilon: float = typer.Option(0.2, "--clip-epsilon", min=0.0, help="PPO ratio clip"),
    updates_per_batch: int = typer.Option(1, "--updates-per-batch", min=1, help="optimizer steps on each batch"),
    token_budget: int | None = typer.Option(
        None, "--token-budget", min=1,
        help="entropy-based pruning: trained tokens per group's prefix tree (tool-call turns are always kept)",
    ),
    prefix_tree: bool = typer.Option(True, "--prefix-tree/--no-prefix-tree",
                                     help="share the forward pass over common prefixes of a group"),
    backend: str = backend_option(),
    workers: int = typer.Option(2, "--workers", min=1, help="episodes run in parallel by the rollout manager"),
    instance_ids: list[str] | None = instance_ids_option(),
    reward: str = typer.Option("binary", "--reward", help="binary (1 when resolved) or partial (share of tests fixed)"),
    max_staleness: int = typer.Option(1, "--max-staleness", min=0,
                                      help="drop groups whose oldest turn is this many updates behind"),
    max_steps: int = typer.Option(RL_MAX_STEPS, "--max-steps", "--max-turns", min=1,
                                  help=f"model turns per episode (default: the --config file's limits.max_steps, "
                                       f"{RL_MAX_STEPS} without --config)"),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", min=1, help="tokens the policy may generate per turn"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="sampling temperature of the policy"),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N, or auto"),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16"),
    command_timeout: float = typer.Option(120.0, "--command-timeout",
                                          help="seconds one shell command may run (default: the --config file's)"),
    grade_timeout: float = typer.Option(TEST_RUN_TIMEOUT_S, "--grade-timeout", min=1, help="seconds allowed to grade one episode (as swerve eval's --timeout)"),
    save_every: int = typer.Option(0, "--save-every", min=0, help="save the adapter every N steps (0: at the end)"),
    max_failed_samples: int = typer.Option(
        16, "--max-failed-samples", min=1,
        help="stop once the rollout manager has given up on this many episodes (each crashed on every retry)",
    ),
    seed: int = _SEED,
    config: Path | None = CONFIG_OPTION,
    overrides: list[str] | None = SET_OPTION,
) -> None:
    """Train a LoRA adapter with GRPO on live, graded rollouts.

    The rollout manager runs the model (in-process transformers) on the tasks in warm
    environments; each group of --group-size graded episodes becomes a prefix tree; the
    adapter is updated on the same model the workers sample from. Episodes open with the
    prompts, tools and limits of --config (the same file `swerve run --config` takes).

    Example: swerve train rl --model tiny --tasks tests/fixtures/toolz_tasks.jsonl --out runs/rl --group-size 4 --steps 2 --max-steps 5 --max-new-tokens 64
    """
    from swerve.rl.trainer import GRPOConfig

    if reward not in _REWARDS:
        _fail(f"--reward {reward!r}: use {' or '.join(_REWARDS)}")
    task_list = _rl_tasks(tasks, instance_ids)
    agent = _rl_agent_config(ctx, config, overrides, max_steps, command_timeout)
    grpo = GRPOConfig(
        learning_rate=lr, clip_epsilon=clip_epsilon, kl_coef=kl_coef, updates_per_batch=updates_per_batch,
        lora_rank=lora_rank, lora_alpha=lora_alpha or 2 * lora_rank, token_budget=token_budget,
        use_prefix_tree=prefix_tree, seed=seed,
    )
    rollouts = RLRollouts(group_size=group_size, groups_per_step=groups_per_step, steps=steps, workers=workers,
                          backend=backend, reward=reward, max_staleness=max_staleness, grade_timeout_s=grade_timeout,
                          save_every=save_every, max_failed_samples=max_failed_samples)
    policy_options = {"device": device, "dtype": dtype, "temperature": temperature, "max_new_tokens": max_new_tokens}
    model_path = _rl_write_settings(ctx, model, tasks, task_list, out, grpo, rollouts, agent, policy_options)
    _rl_train(model_path, task_list, out, grpo, rollouts, agent, policy_options)


@dataclass(frozen=True)
class RLRollouts:
    """How `train rl` gathers its rollouts: groups, steps, parallelism, backend, reward."""

    group_size: int
    groups_per_step: int
    steps: int
    workers: int
    backend: str
    reward: str
    max_staleness: int
    grade_timeout_s: float
    save_every: int
    max_failed_samples: int


def _rl_tasks(tasks: str, instance_ids: list[str] | None) -> list[Any]:
    """The tasks to train on (each needs FAIL_TO_PASS to be graded); bad input exits 2."""
    from swerve.errors import SwerveError
    from swerve.harness.tasks import load_tasks

    try:
        task_list = load_tasks(tasks, instance_ids=split_instance_ids(instance_ids), require=["FAIL_TO_PASS"])
    except (SwerveError, ValueError, OSError) as exc:
        _fail(f"--tasks: {exc}")
    if not task_list:
        _fail(f"--tasks {tasks}: no tasks to train on")
    return task_list


def _rl_agent_config(ctx: typer.Context, config: Path | None, overrides: list[str] | None, max_steps: int,
                     command_timeout: float):
    """The episode configuration (swerve.agents.config.AgentConfig): --config, then the limit
    flags given on the command line, then --set; without --config, RL_MAX_STEPS turns."""
    from swerve.agents.config import AgentConfigError
    from swerve.cli.agent_options import agent_config_from_cli

    flags = {"max_steps": ("max_steps", "--max-steps", max_steps),
             "command_timeout_s": ("command_timeout", "--command-timeout", command_timeout)}
    try:
        agent = agent_config_from_cli(ctx, config, overrides, flags)
        if config is None and not any(item.strip().startswith("limits.max_steps=") for item in overrides or ()):
            from swerve.agents.config import resolve_agent_config

            agent = resolve_agent_config(agent, max_steps=max_steps)
    except AgentConfigError as exc:
        _fail(str(exc))
    return agent


def _rl_write_settings(ctx: typer.Context, model: str, tasks: str, task_list: list[Any], out: Path, grpo: Any,
                       rollouts: RLRollouts, agent: Any, policy_options: dict[str, Any]) -> str:
    """Resolve the model and write OUT/run_config.json (arguments, GRPO, policy, rollouts, episode)."""
    from swerve.agents.policies import resolve_model_path
    from swerve.rl.trainer import save_run_config

    model_path = resolve_model_path(model)
    out.mkdir(parents=True, exist_ok=True)
    save_run_config(
        out, **_invocation(ctx), model=model_path, tasks=tasks, instance_ids=[t.instance_id for t in task_list],
        grpo=grpo.to_dict(), policy={"backend": "hf-exact", **policy_options},
        rollouts={**asdict(rollouts), "episode_limits": asdict(agent.limits), "agent_config": agent.describe()},
    )
    return model_path


def _rl_train(model_path: str, task_list: list[Any], out: Path, grpo: Any, rollouts: RLRollouts, agent: Any,
              policy_options: dict[str, Any]) -> None:
    """Run GRPO, printing one line per step; SIGINT / SIGTERM keep the finished steps."""
    from swerve.rl import rewards
    from swerve.rl.grpo_run import run_grpo

    def show(metrics: dict[str, Any]) -> None:
        pruned = metrics.get("pruning")
        kept = f" kept {pruned['tokens_kept']}/{pruned['tokens_total']} tokens" if pruned else ""
        console.print(f"step {metrics['step']}/{rollouts.steps}: reward {metrics['reward_mean']:.3f} "
                      f"loss {metrics['loss']:.4f} tokens {metrics['tokens_forwarded']}{kept}")

    console.print(f"GRPO on {len(task_list)} task(s), {rollouts.group_size} rollouts per group, "
                  f"{rollouts.steps} step(s) -> {out}")
    try:
        with stoppable():
            run_grpo(
                model_path, task_list, out, grpo, steps=rollouts.steps, group_size=rollouts.group_size,
                groups_per_step=rollouts.groups_per_step, workers=rollouts.workers, backend=rollouts.backend,
                agent=agent, policy_options=policy_options, reward=getattr(rewards, _REWARDS[rollouts.reward]),
                max_staleness=rollouts.max_staleness, grade_timeout_s=rollouts.grade_timeout_s,
                save_every=rollouts.save_every, max_failed_samples=rollouts.max_failed_samples, on_step=show,
            )
    except KeyboardInterrupt as exc:
        _interrupted(exc, f"finished steps are saved in {out}; rollouts in flight were abandoned")
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    console.print(f"[green]adapter saved[/] {out / 'adapter'}")
