"""Entropy-based pruning of a prefix tree under a token budget.

Where the policy was unsure (high entropy) is where a training signal is worth the
compute; tokens it would almost surely produce again teach little. Each tree
segment (a run of tokens with no fork inside) gets a value: the entropy summed over
its tokens, weighted by the probability of reaching it. Under a token budget the
kept segments form a rooted subtree (a segment is useless without its prefix), so
they are chosen greedily by value per token over whole chains from the kept part
outwards, which lets a valuable deep branch pull in a cheap, dull parent. Segments
holding a tool-call turn are always kept, with their ancestors, even past the
budget (then `over_budget` says so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from swerve.rl.prefix_tree import PrefixTree

Reach = Literal["policy", "empirical"]


@dataclass(frozen=True)
class PruneResult:
    """What pruning kept. Ids are `PrefixTree.segments` ids; values are in entropy units (nats)."""

    kept: tuple[int, ...]
    dropped: tuple[int, ...]
    forced: tuple[int, ...]
    tokens_kept: int
    tokens_total: int
    budget: int
    value_kept: float
    value_total: float
    segment_values: tuple[float, ...]

    @property
    def over_budget(self) -> bool:
        return self.tokens_kept > self.budget

    @property
    def value_fraction(self) -> float:
        return self.value_kept / self.value_total if self.value_total > 0 else 1.0

    def token_mask(self, tree: PrefixTree) -> list[bool]:
        """One flag per serial tree token: True where the token's segment was kept."""
        kept = set(self.kept)
        return [segment in kept for segment in tree.token_segment]

    def kept_sequences(self, tree: PrefixTree) -> list[list[int]]:
        """Token lists covering exactly the kept segments, one per kept branch end."""
        if not self.kept:
            return []
        pruned, _ = self.subtree(tree)
        return [[pruned.token_ids[serial] for serial in path] for path in pruned.sequence_paths]

    def subtree(self, tree: PrefixTree) -> tuple[PrefixTree, list[int]]:
        """The pruned tree, and for each of its serial tokens the serial index it had in `tree`.

        Kept tokens keep all their ancestors, so their log-probs in the pruned tree
        equal those in the full tree; index full-tree tensors (e.g.
        `tree_loss_weights(tree, ...)`, old log-probs) with the map to train on it.
        """
        kept = set(self.kept)
        ends = [segment for segment in self.kept if not any(child in kept for child in tree.segments[segment].children)]
        if not ends:
            raise ValueError("pruning kept nothing (budget 0 and no tool-call turns); raise the budget")
        chains = [tree.segment_ancestors(end) + [end] for end in ends]
        old_paths = [
            [serial for segment in chain for serial in range(tree.segments[segment].start, tree.segments[segment].stop)]
            for chain in chains
        ]
        pruned = PrefixTree.build([[tree.token_ids[serial] for serial in path] for path in old_paths])
        original = [0] * pruned.num_tokens
        for new_path, old_path in zip(pruned.sequence_paths, old_paths):
            for new, old in zip(new_path, old_path):
                original[new] = old
        return pruned, original

    def summary(self) -> dict:
        return {
            "kept_segments": len(self.kept),
            "dropped_segments": len(self.dropped),
            "tokens_kept": self.tokens_kept,
            "tokens_total": self.tokens_total,
            "budget": self.budget,
            "value_kept": round(self.value_kept, 6),
            "value_total": round(self.value_total, 6),
            "value_fraction": round(self.value_fraction, 6),
            "over_budget": self.over_budget,
        }


def _as_floats(values, name: str, expected: int) -> list[float]:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().tolist()
    values = [float(value) for value in values]
    if len(values) != expected:
        raise ValueError(f"{name} has {len(values)} entries for a tree of {expected} tokens; pass one per tree token")
    return values


def reach_probabilities(
    tree: PrefixTree, token_logprobs: Sequence[float] | None = None, reach: Reach = "policy"
) -> list[float]:
    """Probability of reaching each segment.

    "policy": at each fork, the policy's probability of each child's first token,
    renormalised over the children present; multiplied down the tree. "empirical"
    (or when no log-probs are given, and always among first segments, which nothing
    predicts): the share of the group's sequences passing through the segment.
    """
    if reach not in ("policy", "empirical"):
        raise ValueError(f"reach must be 'policy' or 'empirical', got {reach!r}")
    total = tree.num_sequences
    shares = [len(segment.sequences) / total for segment in tree.segments]
    if reach == "empirical" or token_logprobs is None:
        return shares
    logprobs = _as_floats(token_logprobs, "token_logprobs", tree.num_tokens)
    probabilities = [0.0] * len(tree.segments)
    for segment in tree.segments:
        if segment.parent < 0:
            probabilities[segment.id] = shares[segment.id]
            continue
        siblings = tree.segments[segment.parent].children
        top = max(logprobs[tree.segments[sibling].start] for sibling in siblings)
        weight = math.exp(logprobs[segment.start] - top)
        normaliser = sum(math.exp(logprobs[tree.segments[sibling].start] - top) for sibling in siblings)
        probabilities[segment.id] = probabilities[segment.parent] * weight / normaliser
    return probabilities


def segment_values(
    tree: PrefixTree,
    token_entropies: Sequence[float],
    token_logprobs: Sequence[float] | None = None,
    reach: Reach = "policy",
) -> list[float]:
    """Value of each segment: summed token entropy times the probability of reaching it."""
    entropies = _as_floats(token_entropies, "token_entropies", tree.num_tokens)
    probabilities = reach_probabilities(tree, token_logprobs, reach)
    return [
        probabilities[segment.id] * sum(entropies[segment.start : segment.stop]) for segment in tree.segments
    ]


def tool_call_segments(tree: PrefixTree, tool_call_spans: Sequence[Sequence[tuple[int, int]]]) -> set[int]:
    """Segments holding any token of a tool-call turn; spans are (start, stop) per sequence, half-open."""
    if len(tool_call_spans) != tree.num_sequences:
        raise ValueError(
            f"tool_call_spans has {len(tool_call_spans)} entries for {tree.num_sequences} sequences; "
            f"pass one list of (start, stop) spans per sequence (empty when it has none)"
        )
    segments: set[int] = set()
    for number, spans in enumerate(tool_call_spans):
        path = tree.sequence_paths[number]
        for start, stop in spans:
            if not 0 <= start < stop <= len(path):
                raise ValueError(
                    f"tool-call span ({start}, {stop}) of sequence {number} is outside its {len(path)} tokens; "
                    f"spans are half-open token index ranges"
                )
            segments.update(tree.token_segment[serial] for serial in path[start:stop])
    return segments


def prune_tree(
    tree: PrefixTree,
    token_entropies: Sequence[float],
    budget: int,
    *,
    token_logprobs: Sequence[float] | None = None,
    tool_call_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
    reach: Reach = "policy",
) -> PruneResult:
    """Keep the most valuable rooted part of `tree` that fits in `budget` tokens.

    `token_entropies`/`token_logprobs` are tree-level (one per serial token), as
    `tree_logprobs` returns them. Tool-call turns (and everything before them)
    are always kept.
    """
    if budget < 0:
        raise ValueError(f"budget must be a non-negative number of tokens, got {budget}")
    values = segment_values(tree, token_entropies, token_logprobs, reach)
    sizes = [segment.num_tokens for segment in tree.segments]
    kept: set[int] = set()
    forced: set[int] = set()
    for segment in tool_call_segments(tree, tool_call_spans) if tool_call_spans is not None else ():
        forced.update(tree.segment_ancestors(segment) + [segment])
    kept.update(forced)
    used = sum(sizes[segment] for segment in kept)

    while True:
        frontier = [
            segment.id
            for segment in tree.segments
            if segment.id not in kept and (segment.parent < 0 or segment.parent in kept)
        ]
        best = _best_chain(tree, frontier, values, sizes, budget - used)
        if best is None:
            break
        kept.update(best)
        used += sum(sizes[segment] for segment in best)

    ordered = tuple(sorted(kept))
    return PruneResult(
        kept=ordered,
        dropped=tuple(segment.id for segment in tree.segments if segment.id not in kept),
        forced=tuple(sorted(forced)),
        tokens_kept=used,
        tokens_total=tree.num_tokens,
        budget=budget,
        value_kept=sum(values[segment] for segment in ordered),
        value_total=sum(values),
        segment_values=tuple(values),
    )


def _best_chain(
    tree: PrefixTree, frontier: list[int], values: list[float], sizes: list[int], room: int
) -> list[int] | None:
    """The chain from a frontier segment down to any descendant with the best value per token that fits."""
    best_key: tuple[float, float] | None = None
    best_chain: list[int] | None = None
    for start in frontier:
        stack = [(start, [start], values[start], sizes[start])]
        while stack:
            segment, chain, value, size = stack.pop()
            if size > room:
                continue
            key = (value / size if size else math.inf, value)
            if best_key is None or key > best_key:
                best_key, best_chain = key, chain
            for child in tree.segments[segment].children:
                stack.append((child, chain + [child], value + values[child], size + sizes[child]))
    return best_chain
