"""The whole `swerve train rl` loop as a function: GRPO on live rollouts from the
rollout manager, with the model that acts also the one being trained.

    history = run_grpo(model_path, tasks, out, GRPOConfig(...), steps=10, group_size=8)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_grpo(
    model_path: str,
    tasks: list[Any],
    out: Path,
    config: Any,
    *,
    steps: int,
    group_size: int,
    groups_per_step: int = 1,
    workers: int = 2,
    backend: str = "auto",
    episode_limits: Any = None,
    agent: Any = None,
    policy_options: dict[str, Any] | None = None,
    reward: Any = None,
    max_staleness: int = 1,
    grade: bool = True,
    grade_timeout_s: float = 600.0,
    save_every: int = 0,
    max_failed_samples: int | None = 16,
    opener: Any = None,
    on_step: Any = None,
) -> list[dict[str, Any]]:
    """GRPO on live rollouts: the model acts in the rollout manager's environments
    through `ExactTokenPolicy` (in-process transformers, token-exact turns), and the
    trainer updates a LoRA adapter on that very model (the workers wait at a turn
    boundary during each update). `policy_options`: device, dtype, temperature,
    top_p, max_new_tokens, chat_template_kwargs. `agent` is the episode configuration
    (swerve.agents.config: prompts, tools, parser, limits; an AgentConfig or a YAML path),
    the same one `swerve run --config` uses; `episode_limits` overrides its limits.

    Writes OUT/rollouts.jsonl (every graded trajectory, in batch order),
    OUT/history.jsonl (one metrics line per step), and OUT/adapter + OUT/config.json
    + OUT/history.json (every `save_every` steps and at the end, also when
    interrupted after at least one step). Stops with an error once the manager has
    given up on `max_failed_samples` episodes (each crashed on every retry).
    """
    import threading

    from swerve.agents.trajectory import append_trajectory
    from swerve.fileio import append_jsonl
    from swerve.rl.trainer_feed import ConversionStats, ExactTokenPolicy, batches_from_manager
    from swerve.rl.rollouts import RolloutManager
    from swerve.rl.trainer import GRPOTrainer

    options = dict(policy_options or {})
    model, tokenizer = load_policy_model(model_path, options.pop("device", "auto"), options.pop("dtype", "auto"))
    trainer = GRPOTrainer(model, config)
    lock = threading.Lock()

    def policy_for(task) -> ExactTokenPolicy:
        return ExactTokenPolicy(model, tokenizer, lock=lock, model_name=model_path, **options)

    out.mkdir(parents=True, exist_ok=True)
    stats = ConversionStats()
    manager_options: dict[str, Any] = {}
    if opener is not None:
        manager_options["opener"] = opener

    def record_batch(rollouts, samples) -> None:
        for rollout in rollouts:
            append_trajectory(out / "rollouts.jsonl", rollout.trajectory)

    def after_step(metrics: dict[str, Any]) -> None:
        model.eval()
        metrics["conversion"] = stats.to_dict()
        append_jsonl(out / "history.jsonl", metrics)
        if save_every and metrics["step"] % save_every == 0:
            trainer.save(out)
        if on_step is not None:
            on_step(metrics)

    manager = RolloutManager(
        tasks, policy_for, workers=workers, group_size=group_size,
        max_groups_ahead=max(2, groups_per_step), max_staleness=max_staleness, backend=backend,
        limits=episode_limits, agent=agent, reward=reward, grade=grade, grade_timeout_s=grade_timeout_s,
        run_id=out.name or "rl", **manager_options,
    )
    try:
        with manager:
            batches = batches_from_manager(manager, groups_per_step, stats=stats, on_batch=record_batch,
                                           max_failed_samples=max_failed_samples)
            try:
                trainer.train(batches, steps, on_step=after_step)
            finally:
                batches.close()
    finally:
        if trainer.history:
            trainer.save(out)
    return trainer.history


def load_policy_model(model_path: str, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """The causal LM (in eval mode, on `device`) and its tokenizer; a clear error when it cannot load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swerve.agents.policies.hf import resolve_device, resolve_dtype

    chosen = resolve_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=resolve_dtype(dtype, chosen)).to(chosen)
    except OSError as exc:
        raise ValueError(
            f"cannot load model {model_path!r} ({exc}); pass a local folder holding config.json, weights and "
            "tokenizer, or a model name already in the Hugging Face cache"
        ) from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"model {model_path!r} has no chat template; use an instruct/chat model")
    model.eval()
    return model, tokenizer
