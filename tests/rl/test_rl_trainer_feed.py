"""The bridge from rollout-manager output (TokenTrajectory + reward + group) to the
GRPO trainer's RLSample batches, on hand-made token trajectories."""

from __future__ import annotations

import pytest

from swerve.rl.trainer_feed import (
    ConversionStats,
    batches_from_manager,
    rollouts_to_samples,
    token_trajectory_to_sample,
    tool_call_spans,
)
from swerve.rl.rollouts import Rollout
from swerve.rl.tokens import TokenTrajectory
from swerve.schema import Step, ToolCall, Trajectory

PROMPT = [1, 2, 3, 4]
TURN_1 = [10, 11, 12]
OBSERVATION = [20, 21]
TURN_2 = [30, 31]


def two_turns(rollout_id: str = "r0", *, retokenized: bool = False, second_turn=TURN_2) -> TokenTrajectory:
    completion = TURN_1 + OBSERVATION + list(second_turn)
    return TokenTrajectory(
        prompt_ids=list(PROMPT),
        completion_ids=completion,
        loss_mask=[1] * len(TURN_1) + [0] * len(OBSERVATION) + [1] * len(second_turn),
        logprobs=[-0.1] * len(TURN_1) + [0.0] * len(OBSERVATION) + [-0.2] * len(second_turn),
        turn_spans=[(0, 3), (5, 5 + len(second_turn))],
        policy_versions=[3, 4],
        rollout_id=rollout_id,
        retokenized=retokenized,
    )


def trajectory_with_actions(*actions: ToolCall | None) -> Trajectory:
    return Trajectory(instance_id="t", steps=[Step(index=i, action=a) for i, a in enumerate(actions)],
                      exit_status="submitted")


def rollout(rollout_id: str, group: int, sample: int, reward: float, tokens, *actions) -> Rollout:
    actions = actions or (ToolCall(name="bash", arguments={"command": "ls"}), None)
    return Rollout(rollout_id=rollout_id, instance_id="t", group_id=group, sample_index=sample,
                   trajectory=trajectory_with_actions(*actions), reward=reward, policy_versions=[3, 4], tokens=tokens)


def test_sample_holds_the_exact_ids_and_masks_the_prompt_and_observations():
    sample = token_trajectory_to_sample(two_turns(), 1.0, 7, tool_call_turns=[True, False])
    assert sample.token_ids == PROMPT + TURN_1 + OBSERVATION + TURN_2
    assert sample.loss_mask == [0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    assert [t for t, m in zip(sample.token_ids, sample.loss_mask) if m] == TURN_1 + TURN_2
    assert sample.group_id == "7" and sample.reward == 1.0
    assert sample.tool_call_spans == [(4, 7)], "only the turn that called a tool, offset past the prompt"
    assert sample.token_ids[4:7] == TURN_1
    assert sample.info["policy_version"] == 3 and sample.info["rollout_id"] == "r0"
    assert len(sample.info["sampled_logprobs"]) == len(sample.token_ids)


def test_mismatched_mask_and_turn_flags_are_refused_with_a_clear_error():
    broken = two_turns()
    broken.loss_mask = broken.loss_mask[:-1]
    with pytest.raises(ValueError, match="loss-mask"):
        token_trajectory_to_sample(broken, 0.0, 0)
    with pytest.raises(ValueError, match="one flag per generated turn"):
        tool_call_spans(two_turns(), [True])
    with pytest.raises(ValueError, match="no prompt ids"):
        token_trajectory_to_sample(TokenTrajectory(), 0.0, 0)


def test_tool_call_turns_found_in_decoded_text_without_steps():
    class Tokenizer:
        def decode(self, ids, skip_special_tokens=False):
            return "<tool_call>{}</tool_call>" if ids == TURN_2 else "thinking"

    sample = token_trajectory_to_sample(two_turns(), 0.0, 0, tokenizer=Tokenizer())
    assert sample.tool_call_spans == [(9, 11)]


def test_rollouts_convert_per_group_and_unusable_ones_are_counted_not_trained():
    stats = ConversionStats()
    call = ToolCall(name="bash", arguments={"command": "ls"})
    batch = [
        rollout("a", 5, 0, 1.0, two_turns("a"), call, call),
        rollout("b", 5, 1, 0.0, two_turns("b").to_dict(), None, call),  # read back from JSONL: a dict
        rollout("c", 5, 2, 0.0, None),  # the backend gave no token ids
        rollout("d", 6, 0, 1.0, two_turns("d", retokenized=True)),
        rollout("e", 6, 1, 0.5, two_turns("e", second_turn=[30, 31, 32]), call, None),
    ]
    samples = rollouts_to_samples(batch, stats=stats)
    assert [s.info["rollout_id"] for s in samples] == ["a", "b", "e"]
    assert [s.group_id for s in samples] == ["5", "5", "6"]
    assert samples[0].tool_call_spans == [(4, 7), (9, 11)]
    assert samples[1].tool_call_spans == [(9, 11)]
    assert samples[2].tool_call_spans == [(4, 7)] and len(samples[2].token_ids) == 12
    assert stats.to_dict() == {"converted": 3, "without_tokens": 1, "retokenized": 1, "dropped_ids": ["c", "d"]}
    kept = rollouts_to_samples(batch[3:4], drop_retokenized=False)
    assert kept[0].info["retokenized"] is True


def test_steps_that_do_not_line_up_with_turns_fall_back_to_no_spans():
    odd = rollout("x", 0, 0, 1.0, two_turns("x"), ToolCall(name="submit", arguments={}))
    (sample,) = rollouts_to_samples([odd])
    assert sample.tool_call_spans == []


class FakeManager:
    """Hands out fixed groups and records the pause/update protocol."""

    def __init__(self, groups) -> None:
        self.groups = list(groups)
        self.events: list[str] = []
        self.paused = False
        self.policy_version = 0

    def next_group(self, timeout=None):
        self.events.append("group")
        if not self.groups:
            raise TimeoutError("no group")
        return self.groups.pop(0)

    def pause(self, timeout=None):
        self.events.append("pause")
        self.paused = True

    def resume(self):
        self.events.append("resume")
        self.paused = False

    def update_policy(self, swap=None):
        self.events.append("update")
        self.policy_version += 1
        self.paused = False
        return self.policy_version


def _groups(count: int):
    return [[rollout(f"g{g}s{s}", g, s, float(s % 2), two_turns(f"g{g}s{s}")) for s in range(2)] for g in range(count)]


def test_batches_pause_the_workers_during_an_update_and_bump_the_version():
    manager = FakeManager(_groups(4))
    batches = batches_from_manager(manager, 2)
    first = next(batches)
    assert len(first) == 4 and manager.paused, "workers wait while the trainer updates the weights"
    second = next(batches)
    assert manager.policy_version == 1 and manager.paused
    assert {s.group_id for s in second} == {"2", "3"}
    batches.close()
    assert not manager.paused, "closing the stream lets the workers go on"
    assert manager.events == ["group", "group", "pause", "update", "group", "group", "pause", "resume"]


def test_a_batch_without_any_token_ids_is_an_error_naming_the_fix():
    manager = FakeManager([[rollout("n", 0, 0, 1.0, None)]])
    with pytest.raises(RuntimeError, match="token ids"):
        next(batches_from_manager(manager, 1))
    with pytest.raises(ValueError, match="at least 1"):
        next(batches_from_manager(manager, 0))


def test_a_manager_that_keeps_failing_stops_the_stream_with_an_error():
    manager = FakeManager([])
    manager.stats = {"failed_samples": 3}
    manager.max_attempts = 3
    with pytest.raises(RuntimeError, match="gave up on 3 samples"):
        next(batches_from_manager(manager, 1, max_failed_samples=3))
    with pytest.raises(TimeoutError):
        next(batches_from_manager(manager, 1, max_failed_samples=5, timeout=0.01))


@pytest.mark.rl
def test_grpo_trainer_consumes_the_manager_batches():
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from swerve.rl.trainer import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
    ))
    trainer = GRPOTrainer(model, GRPOConfig(lora_rank=4, learning_rate=1e-2, token_budget=6))
    manager = FakeManager(_groups(4))
    paused_during_step = []
    history = trainer.train(batches_from_manager(manager, 2), 2,
                            on_step=lambda metrics: paused_during_step.append(manager.paused))
    assert [h["rollouts"] for h in history] == [4, 4] and [h["groups"] for h in history] == [2, 2]
    assert paused_during_step == [True, True]
    assert manager.policy_version == 1
    assert history[0]["pruning"]["tokens_total"] > 0


@pytest.mark.rl
def test_exact_token_policy_continues_its_own_ids_so_rollouts_are_never_retokenized(tmp_path):
    """Junk from a random model re-tokenises differently when a chat is re-rendered;
    continuing the sampled ids keeps the episode's token view exact."""
    from rl_fixtures import ScratchEnvironment
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swerve.agents.loop import EpisodeLimits
    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.rl.trainer_feed import ExactTokenPolicy
    from swerve.rl.gym_env import SweEnv
    from swerve.schema import Task

    folder = make_tiny_qwen3(tmp_path / "tiny")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    task = Task(instance_id="scratch-exact", repo="o/r", problem_statement="Fix the bug.")
    env = SweEnv(task, environment=ScratchEnvironment(task), grade=False, limits=EpisodeLimits(max_steps=3))
    policy = ExactTokenPolicy(model, tokenizer, max_new_tokens=10)
    messages, tools, _ = env.reset()
    completions = []
    done = truncated = False
    while not (done or truncated):
        completion = policy.act(messages, tools)
        completions.append(completion)
        _, _, done, truncated, info = env.step(completion)
        messages = info["messages"]
    tokens = env.token_trajectory
    assert len(completions) >= 2
    assert not tokens.retokenized and policy.rerendered == 0
    assert tokens.policy_token_ids() == [c.completion_token_ids for c in completions]
    for before, after in zip(completions, completions[1:]):
        assert after.prompt_token_ids[: len(before.prompt_token_ids)] == before.prompt_token_ids
    sample = rollouts_to_samples([Rollout("x", task.instance_id, 0, 0, info["trajectory"], 0.0, tokens=tokens)])[0]
    assert [t for t, m in zip(sample.token_ids, sample.loss_mask) if m] == \
        [t for c in completions for t in c.completion_token_ids]
