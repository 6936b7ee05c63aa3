"""GRPO with TRL on swerve environments: every rollout is an agent episode on a real
task in a container, every reward is graded by the evaluator in a fresh container.

    python examples/rl_trl_grpo.py                      # tiny random Qwen3 on CPU, 2 tasks, 2 steps
    python examples/rl_trl_grpo.py --model Qwen/Qwen3-0.6B --tasks examples/toolz.jsonl --steps 50 \
        --num-generations 4 --max-steps-per-episode 20 --max-new-tokens 512

A random model resolves nothing, so with the default model every swerve reward is 0;
the example adds a small `--diversity-bonus` so the mechanics (advantages, gradients)
are visible. Set it to 0 for real training.
"""

from __future__ import annotations

import argparse
import os
import tempfile


def distinct_token_bonus(completions, completion_ids, **kwargs):
    """Fraction of distinct tokens in a completion (a stand-in signal for demos only)."""
    return [len(set(ids)) / max(len(ids), 1) for ids in completion_ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="examples/toolz.jsonl", help="task file (SWE-bench rows)")
    parser.add_argument("--limit", type=int, default=2, help="use the first N tasks")
    parser.add_argument("--model", default="", help="model folder or name; default: a tiny random Qwen3")
    parser.add_argument("--backend", default="auto", help="docker, local or auto")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps")
    parser.add_argument("--num-generations", type=int, default=2, help="rollouts per task (GRPO group size)")
    parser.add_argument("--max-steps-per-episode", type=int, default=2, help="agent turns per episode")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens per turn")
    parser.add_argument("--reward", choices=["binary", "partial"], default="binary", help="swerve reward")
    parser.add_argument("--diversity-bonus", type=float, default=0.1, help="weight of the demo-only bonus reward")
    parser.add_argument("--workers", type=int, default=2, help="episodes of a batch run in parallel")
    parser.add_argument("--output-dir", default="", help="trainer output folder (default: a temp folder)")
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from swerve.agents.loop import EpisodeLimits
    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.harness.tasks import load_tasks
    from swerve.rl.adapters.skyrl import reward_by_name
    from swerve.rl.adapters.trl import SwerveRollouts, swerve_reward

    model_path = args.model or str(make_tiny_qwen3())
    tasks = load_tasks(args.tasks)[: args.limit]
    rollouts = SwerveRollouts(tasks, backend=args.backend, reward=reward_by_name(args.reward),
                              limits=EpisodeLimits(max_steps=args.max_steps_per_episode, max_format_errors=2),
                              max_new_tokens=args.max_new_tokens, run_id="example-trl-grpo",
                              workers=args.workers)
    reward_funcs, weights = [swerve_reward], [1.0]
    if args.diversity_bonus:
        reward_funcs.append(distinct_token_bonus)
        weights.append(args.diversity_bonus)
    config = GRPOConfig(
        output_dir=args.output_dir or tempfile.mkdtemp(prefix="swerve-grpo-"),
        use_cpu=not args.model, per_device_train_batch_size=args.num_generations,
        num_generations=args.num_generations, max_steps=args.steps, learning_rate=1e-5 if args.model else 1e-2,
        logging_steps=1, report_to=[], save_strategy="no", bf16=False, reward_weights=weights,
    )
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_path),
                          processing_class=AutoTokenizer.from_pretrained(model_path), reward_funcs=reward_funcs,
                          train_dataset=rollouts.dataset(), rollout_func=rollouts, args=config)
    try:
        trainer.train()
    finally:
        rollouts.close()
    for episode in rollouts.history:
        tokens = episode["tokens"]
        print(f"{episode['instance_id']}: exit={episode['exit_status']} reward={episode['reward']} "
              f"turns={len(tokens.turn_spans)} policy_tokens={sum(tokens.loss_mask)}/{len(tokens.loss_mask)}")


if __name__ == "__main__":
    main()
