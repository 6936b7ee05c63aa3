"""Learning check for the GRPO trainer (not a unit test).

A tiny random-weight Qwen3 (swerve's tiny test model, tokenizer trained on the fly)
plays `ToolChoiceEnv`: the user names a tool and a target, and the reply earns 1 for
the right tool call with the right argument (0.5 for the right tool only). The reply
is decoded in structured form: the tool-call JSON around the two slots is fixed
text, and the model chooses the slot tokens (tool name, target) among the
single-token candidates; only those tokens carry loss. Rewards come from the
environment's own parser. LoRA also adapts the output head here: a randomly
initialised head has logits too flat (|logit| ~ 0.2) for adapters on the
attention/MLP projections alone to make a confident choice.

Runs the trainer with and without entropy pruning (token budget), saves the reward
curves as a PNG, and reports the policy's exact expected reward before and after
training (`reward_start`, `reward_end`); prints a JSON line last:

    python bench/learn.py [--steps 60] [--out bench/out/learn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def single_token_words(tokenizer, words: list[str]) -> list[tuple[str, int]]:
    found = []
    for word in words:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) == 1:
            found.append((word, ids[0]))
    return found


def prompt_length(tokenizer, names, targets) -> int:
    from swerve.rl.synthetic import ToolChoiceEnv

    env = ToolChoiceEnv([n for n, _ in names], [t for t, _ in targets], task_index=0)
    return len(build_prompt_ids(tokenizer, env)) + len(tokenizer.encode('<tool_call>\n{"name": "', add_special_tokens=False))


def build_prompt_ids(tokenizer, env) -> list[int]:
    messages, tools, _ = env.reset()
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


def expected_reward(model, tokenizer, envs, prefix, prefix_ids, middle_ids, suffix_ids, name_ids, target_ids) -> float:
    """The policy's exact expected reward (no sampling noise): the sum over every
    (tool, target) choice of its probability under the constrained decoding times
    the reward the environment gives it, averaged over the tasks."""
    import torch

    values = []
    with torch.no_grad():
        for env in envs:
            prompt = build_prompt_ids(tokenizer, env) + prefix_ids
            logits = model(input_ids=torch.tensor([prompt])).logits[0, -1]
            p_name = torch.softmax(logits[name_ids].float(), -1)
            heads = torch.tensor([prompt + [n] + middle_ids for n in name_ids])
            p_target = torch.softmax(model(input_ids=heads).logits[:, -1][:, target_ids].float(), -1)
            total = 0.0
            for i, name in enumerate(name_ids):
                for j, target in enumerate(target_ids):
                    text = prefix + tokenizer.decode([name] + middle_ids + [target] + suffix_ids)
                    reward = env.step(text)[1]
                    total += float(p_name[i] * p_target[i, j]) * reward
            values.append(total)
    return statistics.mean(values)


def run(steps: int, group_size: int, token_budget: int | None, seed: int, model_dir: Path, names, targets, lr: float,
        updates: int = 1, goals: int = 2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swerve.rl.synthetic import ToolChoiceEnv
    from swerve.rl.trainer import DEFAULT_LORA_TARGETS, GRPOConfig, GRPOTrainer, RLSample, sample_completions

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", dtype=torch.float32)
    trainer = GRPOTrainer(
        model,
        GRPOConfig(learning_rate=lr, lora_rank=16, lora_alpha=32, token_budget=token_budget, seed=seed, kl_coef=0.0,
                   updates_per_batch=updates, lora_targets=DEFAULT_LORA_TARGETS + ("lm_head",)),
    )
    envs = [ToolChoiceEnv([n for n, _ in names], [t for t, _ in targets], task_index=i) for i in range(goals)]
    prefix = '<tool_call>\n{"name": "'
    middle = '", "arguments": {"target": "'
    suffix = '"}}\n</tool_call>'
    prefix_ids = tokenizer.encode(prefix, add_special_tokens=False)
    middle_ids = tokenizer.encode(middle, add_special_tokens=False)
    suffix_ids = tokenizer.encode(suffix, add_special_tokens=False)
    name_ids = [i for _, i in names]
    target_ids = [i for _, i in targets]
    def evaluate() -> float:
        return expected_reward(trainer.model, tokenizer, envs, prefix, prefix_ids, middle_ids, suffix_ids, name_ids, target_ids)

    start_value = evaluate()
    curve = []
    for step in range(steps):
        samples = []
        rewards = []
        for env_index, env in enumerate(envs):
            prompt = build_prompt_ids(tokenizer, env) + prefix_ids
            chosen_names = [c[0] for c in sample_completions(
                trainer.model, prompt, group_size, max_new_tokens=1, allowed_token_ids=name_ids)]
            heads = [prompt + [name_token] + middle_ids for name_token in chosen_names]
            chosen_targets = [c[0] for c in sample_completions(
                trainer.model, heads, group_size, max_new_tokens=1, allowed_token_ids=target_ids)]
            for name_token, target_token in zip(chosen_names, chosen_targets):
                reply = [name_token] + middle_ids + [target_token] + suffix_ids
                text = prefix + tokenizer.decode(reply)
                _, reward, _, _, _ = env.step(text)
                rewards.append(reward)
                ids = prompt + reply
                mask = [0] * len(prompt) + [1] + [0] * len(middle_ids) + [1] + [0] * len(suffix_ids)
                samples.append(RLSample(ids, mask, reward, group_id=f"task{env_index}"))
        curve.append(statistics.mean(rewards))
        trainer.step(samples)
        if step % 10 == 0 or step == steps - 1:
            print(f"  step {step:3d}  mean sampled reward {curve[-1]:.3f}", flush=True)
    return curve, trainer, (start_value, evaluate())


def main() -> None:
    parser = argparse.ArgumentParser(description="GRPO learning check on a synthetic tool-choice environment")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--updates", type=int, default=1, help="optimizer steps per rollout batch")
    parser.add_argument("--goals", type=int, default=2, help="distinct tasks (tool, target) the policy must tell apart")
    parser.add_argument("--budget-extra", type=int, default=32,
                        help="pruning budget: tokens kept per group beyond the shared prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/out/learn")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    # A 140k-parameter model: thread start-up and contention cost more than the maths.
    torch.set_num_threads(1)

    model_dir = make_tiny_qwen3(seed=args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    preferred = ["bash", "view", "submit", "test", "path", "edit", "find", "grep", "file", "main", "open", "run"]
    alphabetic = sorted(t for t in tokenizer.get_vocab() if t.isalpha() and t.islower() and 3 <= len(t) <= 8)
    words = single_token_words(tokenizer, preferred + alphabetic)
    if len(words) < 8:
        raise SystemExit(f"the tiny tokenizer has too few single-token words ({words}); change the word lists")
    names, targets = words[:4], words[4:8]
    print(f"tools {[n for n, _ in names]} targets {[t for t, _ in targets]} (start reward by chance ~ {1/16 + 0.5*3/16:.3f})")

    started = time.perf_counter()
    plain, _, plain_expected = run(args.steps, args.group_size, None, args.seed, model_dir, names, targets, args.lr, args.updates, args.goals)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    budget = prompt_length(tokenizer, names, targets) + args.budget_extra
    pruned, trainer, pruned_expected = run(args.steps, args.group_size, budget, args.seed, model_dir, names, targets, args.lr, args.updates, args.goals)
    pruned_s = time.perf_counter() - started


    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(plain, label="GRPO")
    ax.plot(pruned, label=f"GRPO + entropy pruning (prompt + {args.budget_extra} tokens/group)")
    ax.set_xlabel("step")
    ax.set_ylabel("mean sampled reward")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    ax.set_title("tiny Qwen3 (random init) on ToolChoiceEnv")
    fig.tight_layout()
    fig.savefig(out / "learn.png", dpi=110)
    (out / "curves.json").write_text(json.dumps({"plain": plain, "pruned": pruned}))
    kept = [h["pruning"]["tokens_kept"] / h["pruning"]["tokens_total"] for h in trainer.history if "pruning" in h]
    result = {
        "reward_start": round(plain_expected[0], 3),
        "reward_end": round(plain_expected[1], 3),
        "reward_start_pruned": round(pruned_expected[0], 3),
        "reward_end_pruned": round(pruned_expected[1], 3),
        "sampled_reward_last5": round(statistics.mean(plain[-5:]), 3),
        "sampled_reward_last5_pruned": round(statistics.mean(pruned[-5:]), 3),
        "steps": args.steps,
        "group_size": args.group_size,
        "seconds_plain": round(plain_s, 1),
        "seconds_pruned": round(pruned_s, 1),
        "pruned_tokens_kept_fraction": round(statistics.mean(kept), 3) if kept else None,
        "pruned_tokens_kept_fraction_min": round(min(kept), 3) if kept else None,
        "plot": str(out / "learn.png"),
    }
    print(f"expected reward of the policy, before -> after training: {result['reward_start']} -> {result['reward_end']}; "
          f"with pruning {result['reward_start_pruned']} -> {result['reward_end_pruned']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
