"""GRPO trainer: advantages, tree-vs-naive equivalence of the update, learning direction."""

from __future__ import annotations

import copy

import pytest

from swerve.rl.trainer import GRPOConfig, GRPOTrainer, RLSample, group_advantages

pytestmark = pytest.mark.rl


def test_group_advantages_by_hand():
    # group a: rewards 1, 0 -> mean 0.5, std 0.5 -> +1, -1 (divided by 0.5 + 1e-4)
    # group b: rewards 1, 1 -> no signal -> 0, 0
    adv = group_advantages([1.0, 0.0, 1.0, 1.0], ["a", "a", "b", "b"])
    assert adv[0] == pytest.approx(0.5 / 0.5001) and adv[1] == pytest.approx(-0.5 / 0.5001)
    assert adv[2:] == [0.0, 0.0]
    assert group_advantages([3.0, 1.0], ["g", "g"], scale=False) == [1.0, -1.0]


def _tiny_model():
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=128, attn_implementation="sdpa",
    )
    return Qwen3ForCausalLM(config).float()


def _samples():
    prompt = [1, 5, 9, 13, 17, 21]
    return [
        RLSample(prompt + [30, 31, 2, 40], [0] * 6 + [1, 1, 0, 1], 1.0, "g1"),
        RLSample(prompt + [30, 33, 2, 41], [0] * 6 + [1, 1, 0, 1], 0.0, "g1"),
        RLSample(prompt + [35, 36], [0] * 6 + [1, 1], 0.5, "g1"),
        RLSample([3, 4, 5, 6, 7], [0, 0, 1, 1, 1], 1.0, "g2"),
        RLSample([3, 4, 5, 8, 9], [0, 0, 1, 1, 1], 0.0, "g2"),
    ]


def test_tree_update_equals_naive_update():
    import torch

    base = _tiny_model()
    tree_trainer = GRPOTrainer(copy.deepcopy(base), GRPOConfig(learning_rate=1e-2, lora_rank=4, use_prefix_tree=True, kl_coef=0.1))
    naive_trainer = GRPOTrainer(copy.deepcopy(base), GRPOConfig(learning_rate=1e-2, lora_rank=4, use_prefix_tree=False, kl_coef=0.1))
    naive_trainer.model.load_state_dict(tree_trainer.model.state_dict())
    tree_metrics = tree_trainer.step(_samples())
    naive_metrics = naive_trainer.step(_samples())
    assert tree_metrics["loss"] == pytest.approx(naive_metrics["loss"], abs=1e-5)
    assert tree_metrics["tokens_forwarded"] < naive_metrics["tokens_forwarded"]
    for (name, a), (_, b) in zip(tree_trainer.model.named_parameters(), naive_trainer.model.named_parameters()):
        if a.requires_grad:
            assert torch.allclose(a, b, atol=1e-5), name


def test_positive_advantage_raises_the_logprob_of_its_tokens():
    import torch

    from swerve.rl.prefix_tree import sequence_logprobs

    trainer = GRPOTrainer(_tiny_model(), GRPOConfig(learning_rate=5e-2, lora_rank=8))
    good, bad = _samples()[0], _samples()[1]
    with torch.no_grad():
        before = sequence_logprobs(trainer.model, [good.token_ids, bad.token_ids])[0]
    for _ in range(3):
        trainer.step([good, bad])
    with torch.no_grad():
        after = sequence_logprobs(trainer.model, [good.token_ids, bad.token_ids])[0]
    # token 31 (index 7 in the sequence, index 6 in the shifted log-probs) is where good and bad differ
    assert after[0][6] > before[0][6]
    assert after[1][6] < before[1][6]


def test_pruning_forwards_only_the_kept_tree(tmp_path):
    base = _tiny_model()
    full = GRPOTrainer(copy.deepcopy(base), GRPOConfig(lora_rank=4))
    pruned = GRPOTrainer(copy.deepcopy(base), GRPOConfig(lora_rank=4, token_budget=12))
    roomy = GRPOTrainer(copy.deepcopy(base), GRPOConfig(lora_rank=4, token_budget=10_000))
    pruned.model.load_state_dict(full.model.state_dict())
    roomy.model.load_state_dict(full.model.state_dict())
    full_metrics, pruned_metrics, roomy_metrics = full.step(_samples()), pruned.step(_samples()), roomy.step(_samples())
    assert pruned_metrics["pruning"]["tokens_total"] > pruned_metrics["pruning"]["tokens_kept"]
    assert pruned_metrics["tokens_forwarded"] < full_metrics["tokens_forwarded"]
    # a budget that keeps everything changes nothing
    assert roomy_metrics["tokens_forwarded"] == full_metrics["tokens_forwarded"]
    assert roomy_metrics["loss"] == pytest.approx(full_metrics["loss"], abs=1e-6)
    with pytest.raises(ValueError, match="loss-mask"):
        RLSample([1, 2, 3], [0, 1], 1.0, "g")
    trainer = pruned
    trainer.save(tmp_path / "out")
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "out" / "config.json").exists()


def _count_forwards(model) -> list[int]:
    calls = [0]
    model.get_base_model().model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("use_prefix_tree", [True, False])
def test_update_forward_stands_in_for_the_old_forward(use_prefix_tree, monkeypatch):
    import torch

    base = _tiny_model()
    config = GRPOConfig(learning_rate=1e-2, lora_rank=4, use_prefix_tree=use_prefix_tree, kl_coef=0.1)
    fast, slow = GRPOTrainer(copy.deepcopy(base), config), GRPOTrainer(copy.deepcopy(base), config)
    slow.model.load_state_dict(fast.model.state_dict())
    assert fast._old_is_first_update()
    monkeypatch.setattr(slow, "_old_is_first_update", lambda: False)
    fast_calls, slow_calls = _count_forwards(fast.model), _count_forwards(slow.model)
    fast_metrics, slow_metrics = fast.step(_samples()), slow.step(_samples())
    assert fast_calls[0] < slow_calls[0]
    assert fast_metrics["loss"] == pytest.approx(slow_metrics["loss"], abs=1e-6)
    assert fast_metrics["kl"] == pytest.approx(slow_metrics["kl"], abs=1e-6)
    for (name, a), (_, b) in zip(fast.model.named_parameters(), slow.model.named_parameters()):
        if a.requires_grad:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name
            assert torch.allclose(a, b, atol=1e-6), name


def test_old_forward_kept_when_it_differs_from_the_update():
    base = _tiny_model()
    for config in (GRPOConfig(lora_rank=4, updates_per_batch=2), GRPOConfig(lora_rank=4, token_budget=12),
                   GRPOConfig(lora_rank=4, lora_dropout=0.1)):
        assert not GRPOTrainer(copy.deepcopy(base), config)._old_is_first_update(), config
    base.config.attention_dropout = 0.1
    for layer in base.model.layers:
        layer.self_attn.attention_dropout = 0.1
    assert not GRPOTrainer(base, GRPOConfig(lora_rank=4))._old_is_first_update()
