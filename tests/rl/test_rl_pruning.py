"""Pruning keeps the most uncertain branches within budget and never drops a tool-call turn."""

from __future__ import annotations

import math
import random

import pytest
from rl_fixtures import branching_sequences

from swerve.rl.prefix_tree import PrefixTree
from swerve.rl.pruning import prune_tree, reach_probabilities, segment_values

pytestmark = pytest.mark.rl

PROMPT = [1, 2, 3]
CALM = [4, 5]
UNSURE = [6, 7]


def two_branch_tree() -> PrefixTree:
    return PrefixTree.build([PROMPT + CALM, PROMPT + UNSURE])


def entropies_for(tree: PrefixTree, by_token: dict[int, float]) -> list[float]:
    return [by_token.get(token, 0.0) for token in tree.token_ids]


def test_prefers_the_high_entropy_branch_hand_computed():
    tree = two_branch_tree()
    entropies = entropies_for(tree, {2: 0.5, 3: 0.5, 4: 0.1, 5: 0.1, 6: 2.0, 7: 1.0})
    result = prune_tree(tree, entropies, budget=5, reach="empirical")

    prompt, calm, unsure = 0, 1, 2
    assert [tree.token_ids[s.start : s.stop] for s in tree.segments] == [(1, 2, 3), (4, 5), (6, 7)]
    assert result.segment_values == pytest.approx((1.0, 0.5 * 0.2, 0.5 * 3.0))
    assert result.kept == (prompt, unsure)
    assert result.dropped == (calm,)
    assert result.tokens_kept == 5
    assert result.value_kept == pytest.approx(2.5)
    assert result.value_total == pytest.approx(2.6)
    assert result.token_mask(tree) == [True, True, True, False, False, True, True]
    assert result.kept_sequences(tree) == [PROMPT + UNSURE]


def test_policy_reach_weights_branches_by_fork_probability():
    tree = two_branch_tree()
    logprobs = [0.0] * tree.num_tokens
    logprobs[tree.segments[1].start] = math.log(0.6)
    logprobs[tree.segments[2].start] = math.log(0.2)
    assert reach_probabilities(tree, logprobs) == pytest.approx([1.0, 0.75, 0.25])
    entropies = entropies_for(tree, {4: 1.0, 5: 1.0, 6: 1.5, 7: 1.5})
    assert segment_values(tree, entropies, logprobs) == pytest.approx([0.0, 1.5, 0.75])
    result = prune_tree(tree, entropies, budget=5, token_logprobs=logprobs)
    assert result.kept == (0, 1)


def test_tool_call_turns_are_always_kept():
    tree = two_branch_tree()
    entropies = entropies_for(tree, {6: 3.0, 7: 3.0})
    spans = [[(3, 5)], []]
    result = prune_tree(tree, entropies, budget=5, tool_call_spans=spans, reach="empirical")
    assert result.kept == (0, 1)
    assert result.forced == (0, 1)

    squeezed = prune_tree(tree, entropies, budget=2, tool_call_spans=spans, reach="empirical")
    assert squeezed.kept == (0, 1)
    assert squeezed.over_budget


def test_a_valuable_branch_pulls_in_its_dull_parent():
    """Greedy on single segments would take the moderate sibling; chains see the deep payoff."""
    sequences = [[1, 10, 11, 12, 13, 20, 21], [1, 10, 11, 12, 13, 30], [1, 40, 41]]
    tree = PrefixTree.build(sequences)
    entropies = entropies_for(tree, {20: 5.0, 21: 5.0, 30: 0.0, 41: 0.4})
    result = prune_tree(tree, entropies, budget=7, reach="empirical")
    kept_tokens = {token for sequence in result.kept_sequences(tree) for token in sequence}
    assert {20, 21} <= kept_tokens
    assert 41 not in kept_tokens
    assert result.tokens_kept <= 7


@pytest.mark.parametrize("seed", range(5))
def test_budget_is_respected_and_kept_part_is_rooted(seed):
    rng = random.Random(seed)
    sequences = branching_sequences(rng, vocab=50, prompt_tokens=8, fan_out=3, middle_tokens=(2, 6),
                                    tail_tokens=(1, 6))
    tree = PrefixTree.build(sequences)
    entropies = [rng.uniform(0, 3) for _ in range(tree.num_tokens)]
    for budget in range(0, tree.num_tokens + 2, 3):
        result = prune_tree(tree, entropies, budget=budget)
        assert result.tokens_kept <= budget
        assert result.tokens_kept == sum(tree.segments[s].num_tokens for s in result.kept)
        assert set(result.kept) | set(result.dropped) == set(range(len(tree.segments)))
        for segment in result.kept:
            parent = tree.segments[segment].parent
            assert parent < 0 or parent in result.kept
        rebuilt = PrefixTree.build(result.kept_sequences(tree)) if result.kept else None
        assert (rebuilt.num_tokens if rebuilt else 0) == result.tokens_kept
    assert prune_tree(tree, entropies, budget=tree.num_tokens).value_fraction == pytest.approx(1.0)


def test_subtree_maps_pruned_tokens_back_to_the_full_tree():
    sequences = [[1, 2, 3, 4], [1, 2, 5, 6], [1, 7]]
    tree = PrefixTree.build(sequences)
    entropies = entropies_for(tree, {5: 2.0, 6: 2.0, 7: 0.1})
    result = prune_tree(tree, entropies, budget=4, reach="empirical")
    pruned, original = result.subtree(tree)
    assert pruned.num_tokens == result.tokens_kept == 4
    assert [tree.token_ids[serial] for serial in original] == list(pruned.token_ids)
    assert sorted(pruned.token_ids) == [1, 2, 5, 6]
    for serial, parent in enumerate(pruned.parents):
        old_parent = tree.parents[original[serial]]
        assert old_parent == (original[parent] if parent >= 0 else -1)


def test_bad_input_is_named():
    tree = two_branch_tree()
    with pytest.raises(ValueError, match="one per tree token"):
        prune_tree(tree, [1.0], budget=3)
    with pytest.raises(ValueError, match="budget"):
        prune_tree(tree, [0.0] * tree.num_tokens, budget=-1)
    with pytest.raises(ValueError, match="outside its 5 tokens"):
        prune_tree(tree, [0.0] * tree.num_tokens, budget=3, tool_call_spans=[[(4, 9)], []])
    with pytest.raises(ValueError, match="one list of"):
        prune_tree(tree, [0.0] * tree.num_tokens, budget=3, tool_call_spans=[[]])


def test_prunes_a_real_tree_from_model_entropies():
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from swerve.rl.prefix_tree import tree_logprobs

    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, attn_implementation="sdpa",
    )
    model = Qwen3ForCausalLM(config).eval()
    rng = random.Random(0)
    prompt = [rng.randrange(50) for _ in range(10)]
    tree = PrefixTree.build([prompt + [rng.randrange(50) for _ in range(6)] for _ in range(4)])
    with torch.no_grad():
        result = tree_logprobs(model, tree)
    budget = tree.num_tokens // 2
    pruned = prune_tree(tree, result.token_entropies, budget, token_logprobs=result.token_logprobs)
    assert 0 < pruned.tokens_kept <= budget
    assert 0 < pruned.value_kept < pruned.value_total

    smaller, original = pruned.subtree(tree)
    with torch.no_grad():
        again = tree_logprobs(model, smaller)
    index = torch.tensor(original)
    assert torch.allclose(again.token_logprobs, result.token_logprobs[index], atol=1e-4)
    assert torch.allclose(again.token_entropies, result.token_entropies[index], atol=1e-4)
