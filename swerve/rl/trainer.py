"""A GRPO-style agentic-RL trainer for one machine.

Each batch is a set of groups (n rollouts of the same task/prompt). Per group the
rollouts are merged into a prefix tree (`prefix_tree.py`), so the shared prompt and
shared early turns are forwarded once for the old-policy log-probs, once for the
reference log-probs (the LoRA adapter switched off) and once per update. The
objective is the clipped-ratio surrogate with group-relative advantages, an
optional KL penalty to the reference (the k3 estimator), observation tokens masked
out, and, when a token budget is set, entropy-based pruning (`pruning.py`) of the
tree before the update.

For more than one machine, hand the same rollouts to verl or TRL through
`swerve.rl.adapters` instead of growing a distribution layer here.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class RLSample:
    """One rollout as the trainer needs it: the exact token ids (prompt, policy turns,
    observations), a mask with 1 on policy-generated tokens, the reward, its group."""

    token_ids: list[int]
    loss_mask: list[int]
    reward: float
    group_id: str
    tool_call_spans: list[tuple[int, int]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.loss_mask):
            raise ValueError(
                f"rollout in group {self.group_id!r}: {len(self.token_ids)} token ids but "
                f"{len(self.loss_mask)} loss-mask entries; give one mask value per token"
            )


@dataclass
class GRPOConfig:
    """Settings of `GRPOTrainer`; saved beside its outputs as `config.json`."""

    learning_rate: float = 1e-4
    clip_epsilon: float = 0.2
    kl_coef: float = 0.0
    scale_advantages: bool = True
    updates_per_batch: int = 1
    max_grad_norm: float = 1.0
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    token_budget: int | None = None
    use_prefix_tree: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        return data


def group_advantages(rewards: Sequence[float], groups: Sequence[str], *, scale: bool = True) -> list[float]:
    """Reward minus its group's mean, divided by the group's std when `scale` (GRPO);
    a group whose rewards are all equal gives zero advantage (no signal)."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    advantages = [0.0] * len(rewards)
    for indices in members.values():
        values = [float(rewards[i]) for i in indices]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        for i in indices:
            centred = rewards[i] - mean
            advantages[i] = centred / (std + 1e-4) if scale else centred
    return advantages


def add_lora(model: Any, config: GRPOConfig) -> Any:
    """Wrap `model` with a LoRA adapter on its attention and MLP projections."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in config.lora_targets if t in present]
    if not targets:
        raise ValueError(f"none of the LoRA targets {list(config.lora_targets)} exist in this model; set lora_targets")
    lora = LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


class GRPOTrainer:
    """Group-relative policy optimisation over prefix trees, LoRA on one machine."""

    def __init__(self, model: Any, config: GRPOConfig | None = None) -> None:
        import torch

        self.config = config or GRPOConfig()
        torch.manual_seed(self.config.seed)
        random.seed(self.config.seed)
        if self.config.lora_rank > 0 and not hasattr(model, "disable_adapter"):
            model = add_lora(model, self.config)
        self.model = model
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=self.config.learning_rate)
        self.history: list[dict[str, Any]] = []
        self.policy_version = 0

    # -- log-probs ---------------------------------------------------------------

    def _sequence_logprobs(self, sequences: list[list[int]], tree: Any | None):
        """(per-sequence log-probs aligned with tokens[1:], tree log-probs or None)."""
        from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

        if tree is not None:
            result = tree_logprobs(self.model, tree)
            return result.logprobs, result
        logprobs, _ = sequence_logprobs(self.model, sequences)
        return logprobs, None

    def _reference_logprobs(self, sequences: list[list[int]], tree: Any | None):
        import torch

        if self.config.kl_coef <= 0:
            return None
        with torch.no_grad(), self.model.disable_adapter():
            logprobs, _ = self._sequence_logprobs(sequences, tree)
        return [lp.detach() for lp in logprobs]

    # -- one update ---------------------------------------------------------------

    def step(self, samples: Sequence[RLSample]) -> dict[str, Any]:
        """One GRPO update on a batch of rollouts; returns the step's metrics."""
        import torch

        from swerve.rl.prefix_tree import PrefixTree

        if not samples:
            raise ValueError("GRPOTrainer.step got no rollouts")
        started = time.perf_counter()
        advantages = group_advantages(
            [s.reward for s in samples], [s.group_id for s in samples], scale=self.config.scale_advantages
        )
        groups: dict[str, list[int]] = defaultdict(list)
        for index, sample in enumerate(samples):
            groups[sample.group_id].append(index)

        prepared = []
        tokens_forwarded = 0
        pruning_reports = []
        self.model.eval()
        for indices in groups.values():
            sequences = [samples[i].token_ids for i in indices]
            masks = [list(samples[i].loss_mask) for i in indices]
            tree = PrefixTree.build(sequences) if self.config.use_prefix_tree else None
            with torch.no_grad():
                old, old_tree = self._sequence_logprobs(sequences, tree)
            old = [lp.detach() for lp in old]
            reference = self._reference_logprobs(sequences, tree)
            if self.config.token_budget is not None and tree is not None:
                masks, report = self._prune(tree, old_tree, samples, indices, masks)
                pruning_reports.append(report)
            tokens_forwarded += tree.num_tokens if tree is not None else sum(len(s) for s in sequences)
            prepared.append((indices, sequences, masks, tree, old, reference))

        self.model.train()
        total_sequences = len(samples)
        losses, clipped, kls = [], [], []
        for _ in range(self.config.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            batch_loss = 0.0
            for indices, sequences, masks, tree, old, reference in prepared:
                new, _ = self._sequence_logprobs(sequences, tree)
                group_loss = 0.0
                for slot, index in enumerate(indices):
                    mask = torch.tensor(masks[slot][1:], dtype=torch.float32, device=new[slot].device)
                    count = mask.sum()
                    if count <= 0:
                        continue
                    ratio = torch.exp(new[slot] - old[slot])
                    advantage = advantages[index]
                    unclipped = ratio * advantage
                    bounded = torch.clamp(ratio, 1 - self.config.clip_epsilon, 1 + self.config.clip_epsilon) * advantage
                    objective = torch.minimum(unclipped, bounded)
                    per_token = -objective
                    if reference is not None:
                        delta = reference[slot] - new[slot]
                        kl = torch.exp(delta) - delta - 1
                        per_token = per_token + self.config.kl_coef * kl
                        kls.append(float((kl.detach() * mask).sum() / count))
                    clipped.append(float((((ratio.detach() - 1).abs() > self.config.clip_epsilon).float() * mask).sum() / count))
                    group_loss = group_loss + (per_token * mask).sum() / count
                if torch.is_tensor(group_loss):
                    (group_loss / total_sequences).backward()
                    batch_loss += float(group_loss.detach()) / total_sequences
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.config.max_grad_norm
            )
            self.optimizer.step()
            losses.append(batch_loss)
        self.policy_version += 1
        rewards = [s.reward for s in samples]
        metrics = {
            "step": self.policy_version,
            "loss": sum(losses) / len(losses),
            "reward_mean": sum(rewards) / len(rewards),
            "reward_max": max(rewards),
            "groups": len(groups),
            "rollouts": len(samples),
            "tokens_forwarded": tokens_forwarded,
            "clip_fraction": sum(clipped) / len(clipped) if clipped else 0.0,
            "kl": sum(kls) / len(kls) if kls else 0.0,
            "seconds": time.perf_counter() - started,
        }
        if pruning_reports:
            metrics["pruning"] = {
                "tokens_kept": sum(r["tokens_kept"] for r in pruning_reports),
                "tokens_total": sum(r["tokens_total"] for r in pruning_reports),
                "value_fraction": sum(r["value_fraction"] for r in pruning_reports) / len(pruning_reports),
            }
        self.history.append(metrics)
        return metrics

    def _prune(self, tree, old_tree, samples, indices, masks):
        """Zero the loss mask outside the kept part of the tree."""
        from swerve.rl.pruning import prune_tree

        spans = [samples[i].tool_call_spans for i in indices]
        result = prune_tree(
            tree,
            old_tree.token_entropies.tolist(),
            self.config.token_budget,
            token_logprobs=old_tree.token_logprobs.tolist(),
            tool_call_spans=spans if any(spans) else None,
        )
        kept = result.token_mask(tree)
        pruned = []
        for slot, path in enumerate(tree.sequence_paths):
            pruned.append([m if kept[serial] else 0 for m, serial in zip(masks[slot], path)])
        return pruned, result.summary()

    # -- loops and saving -----------------------------------------------------------

    def train(
        self,
        rollouts: Iterable[Sequence[RLSample]] | Callable[[int], Sequence[RLSample]],
        steps: int,
        *,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Run `steps` updates; `rollouts` is an iterable of batches (e.g. a rollout
        manager's batches) or a function of the policy version returning one batch."""
        source = iter(rollouts) if not callable(rollouts) else None
        for _ in range(steps):
            batch = rollouts(self.policy_version) if source is None else next(source)
            metrics = self.step(batch)
            if on_step:
                on_step(metrics)
        return self.history

    def save(self, out_dir: str | Path) -> Path:
        """Save the LoRA adapter, the config and the metrics history."""
        from swerve.fileio import atomic_write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out / "adapter"))
        atomic_write_json(out / "config.json", {"trainer": "grpo", **self.config.to_dict()})
        atomic_write_json(out / "history.json", self.history)
        return out


def sample_completions(
    model: Any,
    prompt_ids: list[int] | list[list[int]],
    n: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    allowed_token_ids: Sequence[int] | None = None,
    eos_token_id: int | None = None,
    seed: int | None = None,
) -> list[list[int]]:
    """Sample `n` completions of `prompt_ids` (token ids in, token ids out); or one
    completion for each of `n` equal-length prompts when `prompt_ids` is a list of
    lists. With `allowed_token_ids`, decoding is constrained to those tokens
    (structured decoding of a tool call's name/argument slots)."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    rows = prompt_ids if prompt_ids and isinstance(prompt_ids[0], list) else [prompt_ids] * n
    if len(rows) != n or len({len(row) for row in rows}) != 1:
        raise ValueError(f"sample_completions: give one prompt, or {n} prompts of equal length")
    ids = torch.tensor(rows, dtype=torch.long, device=device)
    allowed = None
    if allowed_token_ids is not None:
        allowed = torch.full((model.config.vocab_size,), float("-inf"), device=device)
        allowed[list(allowed_token_ids)] = 0.0
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    completions = [[] for _ in range(n)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        cache = None
        step_input = ids
        for _ in range(max_new_tokens):
            output = model(input_ids=step_input, cache=cache, use_cache=True)
            cache = output.cache
            logits = output.logits[:, -1, :].float() / max(temperature, 1e-5)
            if allowed is not None:
                logits = logits + allowed
            chosen = torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(-1)
            for row in range(n):
                if not finished[row]:
                    completions[row].append(int(chosen[row]))
            if eos_token_id is not None:
                finished |= chosen == eos_token_id
            if bool(finished.all()):
                break
            step_input = chosen[:, None]
    if was_training:
        model.train()
    return completions


def save_run_config(out_dir: str | Path, **sections: Any) -> None:
    """Write the settings of a training run beside its outputs (`run_config.json`)."""
    from swerve.fileio import atomic_write_text

    atomic_write_text(Path(out_dir) / "run_config.json", json.dumps(sections, indent=2, default=str) + "\n")
