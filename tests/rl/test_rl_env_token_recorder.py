"""TokenRecorder in policy mode: each turn's prompt must extend the sequence so far."""

from __future__ import annotations

import pytest

from swerve.rl.tokens import TokenRecorder


def test_observation_ids_come_from_the_next_prompt_and_are_masked():
    recorder = TokenRecorder("r-1")
    recorder.add_turn([1, 2, 3], [4, 5], [-0.1, -0.2], policy_version=3)
    recorder.add_turn([1, 2, 3, 4, 5, 6, 7], [8], [-0.3], policy_version=4)
    tokens = recorder.result()
    assert tokens.prompt_ids == [1, 2, 3]
    assert tokens.completion_ids == [4, 5, 6, 7, 8]
    assert tokens.loss_mask == [1, 1, 0, 0, 1]
    assert tokens.logprobs == [-0.1, -0.2, 0.0, 0.0, -0.3]
    assert tokens.turn_spans == [(0, 2), (4, 5)]
    assert tokens.policy_token_ids() == [[4, 5], [8]]
    assert tokens.policy_version == 3 and tokens.rollout_id == "r-1"
    assert not tokens.retokenized


def test_a_prompt_that_rewrites_history_is_flagged():
    recorder = TokenRecorder()
    recorder.add_turn([1, 2, 3], [4, 5], None)
    recorder.add_turn([1, 2, 3, 9, 5, 6], [7], None)
    assert recorder.result().retokenized


def test_a_turn_without_ids_makes_the_episode_untokenised():
    recorder = TokenRecorder()
    recorder.add_turn([1], [2], None)
    recorder.add_turn(None, None, None)
    assert recorder.result() is None


def test_logprobs_must_match_the_ids():
    with pytest.raises(ValueError, match="logprobs"):
        TokenRecorder().add_turn([1], [2, 3], [-0.5])
