"""A real TRL GRPOTrainer run on CPU: the tiny local model, rollouts from swerve
environments on real toolz tasks through the adapter, a few optimizer steps. The
token ids and the loss mask TRL trains on are checked against the rollouts."""

from __future__ import annotations

import pytest
from rl_fixtures import toolz_tasks

from swerve.agents.loop import EpisodeLimits

pytestmark = [pytest.mark.rl, pytest.mark.docker]


def distinct_token_bonus(completions, completion_ids, **kwargs):
    """A test-only second reward that differs between samples: a random model resolves
    nothing, so without it every advantage (and the gradient) would be zero."""
    return [len(set(ids)) / max(len(ids), 1) for ids in completion_ids]


def test_grpo_trainer_trains_on_swerve_rollouts(docker_client, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.rl.adapters.trl import SwerveRollouts, swerve_reward

    folder = make_tiny_qwen3(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    tasks = list(toolz_tasks().values())[:2]
    rollouts = SwerveRollouts(tasks, backend="docker", limits=EpisodeLimits(max_steps=2, max_format_errors=2),
                              max_new_tokens=12, run_id="test-trl", workers=2)
    seen: list[dict] = []

    def recording_rollout_func(prompts, trainer):
        output = rollouts(prompts, trainer)
        seen.append({"output": output, "episodes": rollouts.history[-len(prompts):]})
        return output

    args = GRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, per_device_train_batch_size=2,
                      num_generations=2, max_steps=2, learning_rate=1e-2, logging_steps=1, report_to=[],
                      save_strategy="no", max_completion_length=64, bf16=False, seed=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[swerve_reward, distinct_token_bonus],
                          train_dataset=rollouts.dataset(), rollout_func=recording_rollout_func, args=args)
    try:
        result = trainer.train()
    finally:
        rollouts.close()

    assert trainer.state.global_step == 2
    assert result.training_loss == result.training_loss  # not NaN
    assert len(seen) >= 2
    changed = any(not (p.detach() == before[name]).all() for name, p in trainer.model.named_parameters())
    assert changed, "the optimizer updated the weights"
    for call in seen:
        output, episodes = call["output"], call["episodes"]
        assert len(output["completion_ids"]) == len(episodes)
        for ids, mask, logprobs, episode in zip(output["completion_ids"], output["env_mask"], output["logprobs"],
                                                episodes):
            tokens = episode["tokens"]
            assert len(ids) == len(mask) == len(logprobs)
            policy_ids = [token for token, m in zip(ids, mask) if m == 1]
            assert policy_ids == [t for turn in episode["sampled"] for t in turn]
            steps = episode["trajectory"].steps
            assert [s.completion_token_ids for s in steps] == episode["sampled"]
            assert tokens.turn_spans and all(mask[i] == 1 for s, e in tokens.turn_spans for i in range(s, e))
            if len(steps) > 1:
                assert 0 in mask, "observations between turns are masked out"
        assert all(r == 0.0 for r in output["swerve_reward"]), "a random model resolves nothing"
        assert set(output["swerve_exit_status"]) <= {"format_error", "step_limit", "submitted", "repeated_action"}
