"""A GRPO-style agentic-RL trainer for one machine.

Each batch is a set of groups (n rollouts of the same task/prompt). Per group the
rollouts are merged into a prefix tree (`prefix_tree.py`), so the shared prompt and
shared early turns are forwarded once for the old-policy log-probs, once for the
reference log-probs (the LoRA adapter switched off) and once per update; with one
update per batch, no pruning and no dropout the update's forward gives the old
log-probs itself (the ratio is 1), saving the first. The
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


@dataclass
class _GroupInputs:
    """One group prepared for the update (see `GRPOTrainer._group_inputs`)."""

    indices: list[int]
    sequences: list[list[int]]
    tree: Any
    serials: list[Any] | None
    masks: list[Any]
    old: list[Any] | None
    reference: list[Any] | None
    pruning: dict[str, Any] | None
    tokens: int


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


def same_in_train_and_eval(model: Any) -> bool:
    """True when no module's forward depends on train() vs eval(): no batch norm and
    no dropout rate above 0, whether a Dropout module (LoRA's included) or a number
    an attention layer or the model config applies only in training."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd

    def dropout_rates(owner: Any) -> list[float]:
        return [value for name, value in vars(owner).items()
                if ("dropout" in name or name.endswith("pdrop"))
                and isinstance(value, (int, float)) and not isinstance(value, bool)]

    config = getattr(model, "config", None)
    if config is not None and any(rate > 0 for rate in dropout_rates(config)):
        return False
    for module in model.modules():
        if isinstance(module, _BatchNorm) or (isinstance(module, _DropoutNd) and module.p > 0):
            return False
        if any(rate > 0 for rate in dropout_rates(module)):
            return False
    return True


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

    def _group_inputs(self, samples: Sequence[RLSample], indices: list[int], *,
                      old_needed: bool = True) -> "_GroupInputs":
        """Old (and reference) log-probs for one group, and what the update forwards:
        the group's prefix tree, or after pruning the smaller kept tree, with each
        sequence's trained tokens located in it; or the sequences one by one. Without
        `old_needed` the old log-probs are left to the update (`_old_is_first_update`)."""
        import torch

        from swerve.rl.prefix_tree import PrefixTree, sequence_logprobs, tree_logprobs

        sequences = [samples[i].token_ids for i in indices]
        masks = [torch.tensor(samples[i].loss_mask[1:], dtype=torch.float32) for i in indices]
        if not self.config.use_prefix_tree:
            with torch.no_grad():
                old = [lp.detach() for lp in sequence_logprobs(self.model, sequences)[0]] if old_needed else None
                reference = None
                if self.config.kl_coef > 0:
                    with self.model.disable_adapter():
                        reference = [lp.detach() for lp in sequence_logprobs(self.model, sequences)[0]]
            return _GroupInputs(indices, sequences, None, None, masks, old, reference, None,
                                sum(len(s) for s in sequences))
        tree = PrefixTree.build(sequences)
        with torch.no_grad():
            full = tree_logprobs(self.model, tree) if old_needed or self.config.token_budget is not None else None
            reference_tokens = None
            if self.config.kl_coef > 0:
                with self.model.disable_adapter():
                    reference_tokens = tree_logprobs(self.model, tree).token_logprobs.detach()
        serials = [torch.tensor(path[1:], dtype=torch.long) for path in tree.sequence_paths]
        forward_tree, report, full_index = tree, None, serials
        if self.config.token_budget is not None:
            forward_tree, serials, masks, full_index, report = self._prune(tree, full, samples, indices, serials, masks)
        old = None
        if old_needed:
            old_tokens = full.token_logprobs.detach()
            old = [old_tokens[index] for index in full_index]
        reference = [reference_tokens[index] for index in full_index] if reference_tokens is not None else None
        return _GroupInputs(indices, sequences, forward_tree, serials, masks, old, reference, report,
                            forward_tree.num_tokens)

    def _old_is_first_update(self) -> bool:
        """Whether the old-policy log-probs equal the (only) update's own forward, so
        that forward, detached, can stand in for them and save one forward a group:
        one update per batch, no pruning (the update forwards the very tree the old
        log-probs come from), and a model computing the same in eval() mode (the old
        forward) as in train() mode (the update), i.e. no active dropout."""
        return (self.config.updates_per_batch == 1 and self.config.token_budget is None
                and same_in_train_and_eval(self.model))

    def _prune(self, tree, full, samples, indices, serials, masks):
        """Keep the most valuable part of the tree under the token budget: the update
        forwards only the kept tree, and each sequence trains on its kept tokens."""
        import torch

        from swerve.rl.pruning import prune_tree

        spans = [samples[i].tool_call_spans for i in indices]
        result = prune_tree(
            tree,
            full.token_entropies.tolist(),
            self.config.token_budget,
            token_logprobs=full.token_logprobs.tolist(),
            tool_call_spans=spans if any(spans) else None,
        )
        kept_tree, original = result.subtree(tree)
        position = {old: new for new, old in enumerate(original)}
        new_serials, new_masks, old_serials = [], [], []
        for serial, mask in zip(serials, masks):
            tokens = serial.tolist()
            keep = [k for k, token in enumerate(tokens) if token in position]
            kept_tokens = [tokens[k] for k in keep]
            new_serials.append(torch.tensor([position[token] for token in kept_tokens], dtype=torch.long))
            new_masks.append(mask[keep] if keep else mask[:0])
            old_serials.append(torch.tensor(kept_tokens, dtype=torch.long))
        return kept_tree, new_serials, new_masks, old_serials, result.summary()

    def _new_logprobs(self, group: "_GroupInputs"):
        from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

        if group.tree is None:
            return sequence_logprobs(self.model, group.sequences)[0]
        tokens = tree_logprobs(self.model, group.tree).token_logprobs
        return [tokens[index.to(tokens.device)] for index in group.serials]

    # -- one update ---------------------------------------------------------------

    def step(self, samples: Sequence[RLSample]) -> dict[str, Any]:
        """One GRPO update on a batch of rollouts; returns the step's metrics."""
        import torch

        if not samples:
            raise ValueError("GRPOTrainer.step got no rollouts")
        started = time.perf_counter()
        advantages = group_advantages(
            [s.reward for s in samples], [s.group_id for s in samples], scale=self.config.scale_advantages
        )
        members: dict[str, list[int]] = defaultdict(list)
        for index, sample in enumerate(samples):
            members[sample.group_id].append(index)
        old_needed = not self._old_is_first_update()
        self.model.eval()
        groups = [self._group_inputs(samples, indices, old_needed=old_needed) for indices in members.values()]

        self.model.train()
        losses, clipped, kls = [], [], []
        for _ in range(self.config.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            batch_loss = 0.0
            for group in groups:
                new = self._new_logprobs(group)
                group_loss = 0.0
                for slot, index in enumerate(group.indices):
                    mask = group.masks[slot].to(new[slot].device)
                    count = mask.sum()
                    if count <= 0:
                        continue
                    old = group.old[slot] if group.old is not None else new[slot].detach()
                    ratio = torch.exp(new[slot] - old)
                    advantage = advantages[index]
                    bounded = torch.clamp(ratio, 1 - self.config.clip_epsilon, 1 + self.config.clip_epsilon)
                    per_token = -torch.minimum(ratio * advantage, bounded * advantage)
                    if group.reference is not None:
                        delta = group.reference[slot] - new[slot]
                        kl = torch.exp(delta) - delta - 1
                        per_token = per_token + self.config.kl_coef * kl
                        kls.append(float((kl.detach() * mask).sum() / count))
                    outside = ((ratio.detach() - 1).abs() > self.config.clip_epsilon).float()
                    clipped.append(float((outside * mask).sum() / count))
                    group_loss = group_loss + (per_token * mask).sum() / count
                if torch.is_tensor(group_loss):
                    (group_loss / len(samples)).backward()
                    batch_loss += float(group_loss.detach()) / len(samples)
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
            "tokens_forwarded": sum(g.tokens for g in groups),
            "clip_fraction": sum(clipped) / len(clipped) if clipped else 0.0,
            "kl": sum(kls) / len(kls) if kls else 0.0,
            "seconds": time.perf_counter() - started,
        }
        reports = [g.pruning for g in groups if g.pruning is not None]
        if reports:
            metrics["pruning"] = {
                "tokens_kept": sum(r["tokens_kept"] for r in reports),
                "tokens_total": sum(r["tokens_total"] for r in reports),
                "value_fraction": sum(r["value_fraction"] for r in reports) / len(reports),
            }
        self.history.append(metrics)
        return metrics

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
    """Write the settings of a training run beside its outputs (`run_config.json`) and its run
    record (`run.json`, kind "train", swerve.runrecord)."""
    import swerve
    from swerve.fileio import atomic_write_text
    from swerve.runrecord import RunRecord, now_iso, tasks_source, write_run_record

    atomic_write_text(Path(out_dir) / "run_config.json", json.dumps(sections, indent=2, default=str) + "\n")
    source = sections.get("tasks")  # rft's --teacher is a trajectory file, kept in settings
    settings = json.loads(json.dumps(sections, default=str))
    write_run_record(out_dir, RunRecord(
        run_id=Path(out_dir).resolve().name, kind="train", swerve_version=swerve.__version__,
        tasks=tasks_source(str(source)) if source else {}, model_name=str(sections.get("model") or "") or None,
        settings=settings, created_at=now_iso(),
    ))
