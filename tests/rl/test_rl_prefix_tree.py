"""Prefix-tree log-probs must equal per-sequence ones, and the tree loss must give the branch-averaged gradient."""

from __future__ import annotations

import random

import pytest
from rl_fixtures import branching_sequences

from swerve.rl.prefix_tree import PrefixTree, tree_loss_weights

pytestmark = pytest.mark.rl

TOLERANCE = 1e-4


def tiny_model(attn_implementation: str = "sdpa", seed: int = 0):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        attn_implementation=attn_implementation,
    )
    return Qwen3ForCausalLM(config).eval()


def branching_group(seed: int = 1) -> list[list[int]]:
    """Shared prompt, two turns of branching, plus a duplicate, a strict prefix and an unrelated sequence."""
    rng = random.Random(seed)
    group = branching_sequences(rng, vocab=97, prompt_tokens=12, fan_out=2, middle_tokens=(3, 6), tail_tokens=(2, 5))
    group.append(list(group[0]))
    group.append(group[1][:-2])
    group.append([rng.randrange(97) for _ in range(7)])
    return group


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def max_difference(left, right) -> float:
    return max(((a - b).abs().max().item() for a, b in zip(left, right) if a.numel()), default=0.0)


@pytest.mark.parametrize(
    "attn_implementation, chunk_size, strategy",
    [
        ("sdpa", None, "mask"),
        ("eager", None, "mask"),
        ("sdpa", 5, "mask"),
        ("eager", 5, "mask"),
        ("sdpa", None, "segments"),
        ("eager", None, "segments"),
    ],
)
def test_tree_logprobs_match_per_sequence(attn_implementation, chunk_size, strategy):
    import torch

    from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

    model = tiny_model(attn_implementation)
    group = branching_group()
    tree = PrefixTree.build(group)
    with torch.no_grad():
        result = tree_logprobs(model, tree, chunk_size=chunk_size, strategy=strategy)
        naive_logprobs, naive_entropies = sequence_logprobs(model, group)

    assert tree.num_tokens < tree.num_sequence_tokens
    assert [len(lp) for lp in result.logprobs] == [len(sequence) - 1 for sequence in group]
    assert max_difference(result.logprobs, naive_logprobs) <= TOLERANCE
    assert max_difference(result.entropies, naive_entropies) <= TOLERANCE
    assert all((entropy > 0).all() for entropy in result.entropies if entropy.numel())


def test_padded_batches_match_single_sequences(model):
    import torch

    from swerve.rl.prefix_tree import sequence_logprobs

    group = branching_group(seed=3)
    with torch.no_grad():
        single, _ = sequence_logprobs(model, group, batch_size=1)
        batched, _ = sequence_logprobs(model, group, batch_size=4)
    assert max_difference(single, batched) <= TOLERANCE


def test_temperature_scales_logits(model):
    import torch

    from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

    group = branching_group(seed=4)
    tree = PrefixTree.build(group)
    with torch.no_grad():
        hot = tree_logprobs(model, tree, temperature=2.0)
        naive, _ = sequence_logprobs(model, group, temperature=2.0)
        cold = tree_logprobs(model, tree)
    assert max_difference(hot.logprobs, naive) <= TOLERANCE
    assert max_difference(hot.logprobs, cold.logprobs) > 1e-3


def parameter_gradients(model):
    return {
        name: parameter.grad.detach().clone()
        for name, parameter in model.named_parameters()
        if parameter.grad is not None
    }


@pytest.mark.parametrize("chunk_size, strategy", [(None, "mask"), (7, "mask"), (None, "segments")])
def test_weighted_tree_loss_gives_the_naive_averaged_gradient(model, chunk_size, strategy):
    import torch

    from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

    group = branching_group(seed=5)
    tree = PrefixTree.build(group)
    rng = random.Random(0)
    advantages = [rng.uniform(-1, 1) for _ in group]
    masks = [[float(rng.random() < 0.8) for _ in sequence] for sequence in group]
    sequence_weights = [advantage / (len(group) * len(sequence)) for advantage, sequence in zip(advantages, group)]

    model.zero_grad()
    naive_logprobs, _ = sequence_logprobs(model, group)
    naive_loss = sum(
        -weight * (torch.tensor(mask[1:]) * logprobs).sum()
        for weight, mask, logprobs in zip(sequence_weights, masks, naive_logprobs)
    )
    naive_loss.backward()
    naive_gradients = parameter_gradients(model)

    model.zero_grad()
    result = tree_logprobs(model, tree, chunk_size=chunk_size, strategy=strategy)
    weights = tree_loss_weights(tree, sequence_weights, masks)
    tree_loss = -(weights * result.token_logprobs).sum()
    tree_loss.backward()
    tree_gradients = parameter_gradients(model)
    model.zero_grad()

    assert abs(tree_loss.item() - naive_loss.item()) <= TOLERANCE
    assert naive_gradients.keys() == tree_gradients.keys()
    largest = max(gradient.abs().max().item() for gradient in naive_gradients.values())
    assert largest > 0
    for name, gradient in naive_gradients.items():
        assert torch.allclose(tree_gradients[name], gradient, atol=1e-5, rtol=1e-4), name


def test_per_sequence_views_backpropagate_through_the_tree(model):
    """A non-linear per-branch loss (a clipped ratio) written on the views also gives the naive gradient."""
    import torch

    from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

    group = branching_group(seed=6)
    tree = PrefixTree.build(group)
    advantages = [1.0, -0.5, 0.25, -1.0, 0.75, 0.5, -0.25]
    with torch.no_grad():
        old, _ = sequence_logprobs(model, group)
    old = [lp - 0.1 for lp in old]

    def clipped_loss(logprobs):
        total = 0.0
        for advantage, new, previous in zip(advantages, logprobs, old):
            ratio = torch.exp(new - previous)
            surrogate = torch.minimum(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage)
            total = total - surrogate.mean() / len(group)
        return total

    model.zero_grad()
    clipped_loss(sequence_logprobs(model, group)[0]).backward()
    naive_gradients = parameter_gradients(model)
    model.zero_grad()
    clipped_loss(tree_logprobs(model, tree).logprobs).backward()
    tree_gradients = parameter_gradients(model)
    model.zero_grad()
    for name, gradient in naive_gradients.items():
        assert torch.allclose(tree_gradients[name], gradient, atol=1e-5, rtol=1e-4), name


def test_identical_sequences_share_one_path():
    tree = PrefixTree.build([[5, 6, 7], [5, 6, 7]])
    assert tree.num_tokens == 3
    assert tree.sequence_paths == ((0, 1, 2), (0, 1, 2))
    assert tree.branch_counts == (2, 2, 2)
    assert len(tree.segments) == 1
    weights = tree_loss_weights(tree)
    assert weights.tolist() == [0.0, 1.0, 1.0]


def test_a_sequence_that_is_a_prefix_of_another_ends_a_segment():
    tree = PrefixTree.build([[1, 2, 3, 4], [1, 2]])
    assert tree.num_tokens == 4
    assert tree.sequence_paths[1] == tree.sequence_paths[0][:2]
    assert [(segment.start, segment.stop) for segment in tree.segments] == [(0, 2), (2, 4)]
    assert tree.segments[1].parent == 0
    assert tree.segments[0].sequences == (0, 1)
    assert tree.segments[1].sequences == (0,)
    assert tree_loss_weights(tree).tolist() == [0.0, 1.0, 0.5, 0.5]


def test_sequences_without_a_shared_prefix_stay_separate():
    tree = PrefixTree.build([[1, 2, 3], [4, 5]])
    serialised = tree.serialise()
    assert serialised.input_ids.tolist() == [[1, 2, 3, 4, 5]]
    assert serialised.position_ids.tolist() == [[0, 1, 2, 0, 1]]
    assert serialised.parent_index.tolist() == [-1, 0, 1, -1, 3]
    mask = serialised.attention_mask[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert [segment.parent for segment in tree.segments] == [-1, -1]


def test_branch_mask_hides_sibling_branches():
    tree = PrefixTree.build([[1, 2, 3], [1, 2, 4, 5]])
    mask = tree.serialise().attention_mask[0, 0].int().tolist()
    assert tree.token_ids == (1, 2, 3, 4, 5)
    assert tree.depths == (0, 1, 2, 2, 3)
    assert mask[3] == [1, 1, 0, 1, 0]
    assert mask[4] == [1, 1, 0, 1, 1]
    assert tree.attention_mask(3, 5).int().tolist() == [mask[3], mask[4]]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no sequences"):
        PrefixTree.build([])
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        PrefixTree.build([[1], []])
    tree = PrefixTree.build([[1, 2], [1, 3]])
    with pytest.raises(ValueError, match="one per sequence"):
        tree_loss_weights(tree, [1.0])
    with pytest.raises(ValueError, match="one mask value per token"):
        tree_loss_weights(tree, None, [[1, 1], [1]])


def test_attention_without_mask_support_is_refused(model):
    from swerve.rl.prefix_tree import tree_logprobs

    original = model.config._attn_implementation
    model.config._attn_implementation = "flash_attention_2"
    try:
        with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
            tree_logprobs(model, PrefixTree.build([[1, 2]]))
        with pytest.raises(ValueError, match="strategy must be"):
            tree_logprobs(model, PrefixTree.build([[1, 2]]), strategy="kv")
    finally:
        model.config._attn_implementation = original


def test_sliding_window_layers_are_refused():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from swerve.rl.prefix_tree import tree_logprobs

    config = Qwen3Config(
        vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, use_sliding_window=True, max_window_layers=1, sliding_window=4,
        attn_implementation="sdpa",
    )
    with pytest.raises(ValueError, match="full-attention layers only"):
        tree_logprobs(Qwen3ForCausalLM(config), PrefixTree.build([[1, 2]]))


def test_lora_wrapped_model_matches_per_sequence():
    import torch

    peft = pytest.importorskip("peft")
    from swerve.rl.prefix_tree import sequence_logprobs, tree_logprobs

    lora = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = peft.get_peft_model(tiny_model(), lora).eval()
    group = branching_group(seed=7)
    tree = PrefixTree.build(group)
    with torch.no_grad():
        adapted = tree_logprobs(model, tree)
        naive, _ = sequence_logprobs(model, group)
        with model.disable_adapter():
            base = tree_logprobs(model, tree)
    assert max_difference(adapted.logprobs, naive) <= TOLERANCE
    assert max_difference(adapted.logprobs, base.logprobs) > 1e-3
