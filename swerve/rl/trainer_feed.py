"""From the rollout manager to the GRPO trainer: rollouts in, `RLSample` batches out.

The manager (`swerve.rl.rollouts`) delivers graded episodes whose token view is a
`TokenTrajectory` (the exact ids the policy saw and sampled, a loss mask over the
completion part). The trainer wants one flat sequence per rollout with a mask
over every position, the reward, the group, and the spans of the turns that
called a tool (pruning always keeps those). This module does that conversion and
nothing else, so either side can change without touching the other.

`batches_from_manager` is what `GRPOTrainer.train` consumes: it takes whole groups
from the manager, converts them, pauses the workers while the trainer updates
the weights they share, and bumps the manager's policy version before asking for
the next batch (so staleness is counted in trainer steps).

`ExactTokenPolicy` is the other direction: the trainer's own model acting in the
manager's episodes, continuing its own token sequence turn after turn (observations
appended as chat-template deltas), so the rollouts it yields are never
re-tokenised: what the trainer optimises is exactly what was sampled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from swerve.rl.tokens import TokenTrajectory
from swerve.rl.trainer import RLSample

log = logging.getLogger(__name__)

TOOL_CALL_MARKERS = ("<tool_call>",)


@dataclass
class ConversionStats:
    """What `rollouts_to_samples` kept and why it left rollouts out."""

    converted: int = 0
    without_tokens: int = 0
    retokenized: int = 0
    dropped_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"converted": self.converted, "without_tokens": self.without_tokens,
                "retokenized": self.retokenized, "dropped_ids": list(self.dropped_ids)}


def full_loss_mask(tokens: TokenTrajectory) -> list[int]:
    """A mask over `prompt_ids + completion_ids`: 0 on the prompt, then the recorded mask."""
    if len(tokens.loss_mask) != len(tokens.completion_ids):
        raise ValueError(
            f"token trajectory {tokens.rollout_id or '?'}: {len(tokens.completion_ids)} completion ids but "
            f"{len(tokens.loss_mask)} loss-mask entries; the recorder must give one mask value per completion id"
        )
    return [0] * len(tokens.prompt_ids) + [int(bool(m)) for m in tokens.loss_mask]


def tool_call_turns_from_steps(steps: Sequence[Any]) -> list[bool]:
    """Per recorded turn, whether it made a tool call (a parsed `action`)."""
    return [getattr(step, "action", None) is not None for step in steps]


def tool_call_turns_from_text(tokens: TokenTrajectory, tokenizer: Any,
                              markers: Sequence[str] = TOOL_CALL_MARKERS) -> list[bool]:
    """Per turn, whether its decoded text holds a tool-call block (when no steps are known)."""
    return [
        any(marker in tokenizer.decode(ids, skip_special_tokens=False) for marker in markers)
        for ids in tokens.policy_token_ids()
    ]


def tool_call_spans(tokens: TokenTrajectory, tool_call_turns: Sequence[bool]) -> list[tuple[int, int]]:
    """Half-open spans over the full sequence of the turns that called a tool."""
    if len(tool_call_turns) != len(tokens.turn_spans):
        raise ValueError(
            f"token trajectory {tokens.rollout_id or '?'} has {len(tokens.turn_spans)} turns but "
            f"{len(tool_call_turns)} tool-call flags; pass one flag per generated turn"
        )
    offset = len(tokens.prompt_ids)
    return [(offset + start, offset + end) for (start, end), called in zip(tokens.turn_spans, tool_call_turns)
            if called and end > start]


def token_trajectory_to_sample(
    tokens: TokenTrajectory,
    reward: float,
    group_id: str | int,
    *,
    tool_call_turns: Sequence[bool] | None = None,
    tokenizer: Any = None,
    info: dict[str, Any] | None = None,
) -> RLSample:
    """One `RLSample` from a token trajectory.

    Tool-call turns come from `tool_call_turns` (one flag per generated turn), else
    from the decoded turns when a `tokenizer` is given, else there are none (pruning
    then treats every turn alike).
    """
    if not tokens.prompt_ids:
        raise ValueError(f"token trajectory {tokens.rollout_id or '?'} has no prompt ids; it cannot be trained on")
    if tool_call_turns is None and tokenizer is not None:
        tool_call_turns = tool_call_turns_from_text(tokens, tokenizer)
    spans = tool_call_spans(tokens, tool_call_turns) if tool_call_turns is not None else []
    details = {
        "rollout_id": tokens.rollout_id,
        "policy_version": tokens.policy_version,
        "retokenized": tokens.retokenized,
        "turns": len(tokens.turn_spans),
        "sampled_logprobs": [0.0] * len(tokens.prompt_ids) + list(tokens.logprobs),
        **(info or {}),
    }
    return RLSample(
        token_ids=list(tokens.input_ids),
        loss_mask=full_loss_mask(tokens),
        reward=float(reward),
        group_id=str(group_id),
        tool_call_spans=spans,
        info=details,
    )


def _as_token_trajectory(value: Any) -> TokenTrajectory | None:
    """The manager stores a TokenTrajectory; a trajectory read back from JSONL holds its dict."""
    if value is None or isinstance(value, TokenTrajectory):
        return value
    if isinstance(value, dict):
        return TokenTrajectory(
            prompt_ids=list(value.get("prompt_ids") or []),
            completion_ids=list(value.get("completion_ids") or []),
            loss_mask=list(value.get("loss_mask") or []),
            logprobs=list(value.get("logprobs") or []),
            turn_spans=[tuple(span) for span in value.get("turn_spans") or []],
            policy_versions=list(value.get("policy_versions") or []),
            rollout_id=str(value.get("rollout_id") or ""),
            retokenized=bool(value.get("retokenized", False)),
        )
    raise TypeError(f"rollout tokens of type {type(value).__name__}: expected a TokenTrajectory or its dict")


def rollout_to_sample(rollout: Any, *, tokenizer: Any = None) -> RLSample | None:
    """One manager `Rollout` as an `RLSample`; None when the episode has no token ids.

    The group id is the manager's group number, so rollouts of the same task taken at
    different times are never mixed into one advantage baseline.
    """
    trajectory = getattr(rollout, "trajectory", None)
    tokens = _as_token_trajectory(getattr(rollout, "tokens", None))
    if tokens is None and trajectory is not None:
        tokens = _as_token_trajectory(trajectory.model_extra.get("tokens"))
    if tokens is None or not tokens.prompt_ids:
        return None
    steps = list(trajectory.steps) if trajectory is not None else []
    turns = tool_call_turns_from_steps(steps) if len(steps) == len(tokens.turn_spans) else None
    if turns is None and steps:
        log.warning("rollout %s: %d steps but %d token turns; %s", rollout.rollout_id, len(steps),
                    len(tokens.turn_spans),
                    "finding tool calls in the decoded text" if tokenizer is not None else "no tool-call spans")
    info = {
        "instance_id": rollout.instance_id,
        "sample_index": rollout.sample_index,
        "exit_status": getattr(trajectory, "exit_status", None),
    }
    return token_trajectory_to_sample(tokens, rollout.reward, rollout.group_id, tool_call_turns=turns,
                                      tokenizer=tokenizer, info=info)


def rollouts_to_samples(
    rollouts: Iterable[Any],
    *,
    tokenizer: Any = None,
    drop_retokenized: bool = True,
    stats: ConversionStats | None = None,
) -> list[RLSample]:
    """Convert a batch of rollouts. Rollouts without token ids are left out (the
    policy backend gave none); so are `retokenized` ones by default, whose ids are
    not exactly what the policy saw. `stats` counts what was left out."""
    stats = stats if stats is not None else ConversionStats()
    samples = []
    for rollout in rollouts:
        sample = rollout_to_sample(rollout, tokenizer=tokenizer)
        if sample is None:
            stats.without_tokens += 1
            stats.dropped_ids.append(rollout.rollout_id)
            continue
        if sample.info.get("retokenized") and drop_retokenized:
            stats.retokenized += 1
            stats.dropped_ids.append(rollout.rollout_id)
            continue
        samples.append(sample)
        stats.converted += 1
    return samples


def batches_from_manager(
    manager: Any,
    groups_per_step: int = 1,
    *,
    tokenizer: Any = None,
    drop_retokenized: bool = True,
    timeout: float | None = None,
    pause_during_update: bool = True,
    stats: ConversionStats | None = None,
    on_batch: Any = None,
    max_failed_samples: int | None = None,
) -> Iterator[list[RLSample]]:
    """Endless batches of `RLSample`s from a started `RolloutManager`, for
    `GRPOTrainer.train(batches_from_manager(manager, 2), steps)`.

    Between handing out a batch and being asked for the next one, the trainer
    updates the weights; with `pause_during_update` the manager's workers are held
    at their next turn boundary meanwhile (they share the model), and the manager's
    policy version is bumped before they resume. A batch in which no rollout has
    token ids raises: the policy backend must return them (hf, vLLM, or an
    OpenAI-compatible server with token ids on). `on_batch(rollouts, samples)` is
    called for every batch (to log or save the rollouts). `timeout` bounds the wait
    for one group; with `max_failed_samples`, the stream stops with an error once the
    manager has given up on that many samples (episodes that crash every time, e.g.
    a policy that cannot run) instead of waiting for groups that never come.
    """
    if groups_per_step < 1:
        raise ValueError(f"groups_per_step must be at least 1, got {groups_per_step}")
    stats = stats if stats is not None else ConversionStats()
    while True:
        rollouts = []
        for _ in range(groups_per_step):
            rollouts.extend(_next_group(manager, timeout, max_failed_samples))
        samples = rollouts_to_samples(rollouts, tokenizer=tokenizer, drop_retokenized=drop_retokenized, stats=stats)
        if not samples:
            raise RuntimeError(
                f"none of the {len(rollouts)} rollouts in this batch has usable token ids "
                f"({stats.without_tokens} without ids, {stats.retokenized} retokenized); use a policy that "
                "returns prompt/completion token ids (hf, vllm, or openai with token_ids=true)"
            )
        if on_batch is not None:
            on_batch(rollouts, samples)
        if pause_during_update:
            manager.pause()
        try:
            yield samples
        except GeneratorExit:
            manager.resume()
            raise
        manager.update_policy()


def _next_group(manager: Any, timeout: float | None, max_failed_samples: int | None, poll_s: float = 5.0) -> list[Any]:
    if max_failed_samples is None:
        return manager.next_group(timeout)
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
        try:
            return manager.next_group(wait)
        except TimeoutError:
            failed = manager.stats.get("failed_samples", 0)
            if failed >= max_failed_samples:
                raise RuntimeError(
                    f"the rollout manager gave up on {failed} samples (each crashed {manager.max_attempts} times); "
                    "see the warnings above for the episodes' errors"
                ) from None
            if deadline is not None and time.monotonic() >= deadline:
                raise


class ExactTokenPolicy:
    """A policy for one episode over an in-process model (the trainer's): each turn
    is sampled from the previous prompt + the ids it generated + the observation's
    template delta, never from a re-rendered chat.

    A policy that re-renders the conversation each turn (the hf policy) can give
    ids that differ from the sampled ones (byte-level BPE has many spellings of one
    text; templates rewrite earlier turns), and then the rollout is `retokenized`
    and cannot be trained on exactly. Build a fresh one per episode (the rollout
    manager's `policy_factory` does); share `lock` between them so concurrent
    workers take turns on the model.
    """

    name = "hf-exact"

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int = 512, temperature: float = 1.0,
                 top_p: float = 1.0, lock: Any = None, chat_template_kwargs: dict[str, Any] | None = None,
                 model_name: str = "") -> None:
        import threading

        from swerve.agents.policies.chat_tokens import stop_token_ids

        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.lock = lock or threading.Lock()
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.model_name = model_name
        self.stops = stop_token_ids(tokenizer, getattr(getattr(model, "generation_config", None), "eos_token_id", None))
        self._ids: list[int] | None = None
        self._last_completion: list[int] = []
        self.rerendered = 0

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "model": self.model_name, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "chat_template_kwargs": self.chat_template_kwargs}

    def next_prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        """The ids to continue: the whole sequence so far plus the new observation."""
        from swerve.agents.policies.chat_tokens import prompt_token_ids
        from swerve.rl.tokens import observation_token_ids

        assistant = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        if self._ids is None or not assistant:
            return prompt_token_ids(self.tokenizer, messages, tools, self.chat_template_kwargs)
        last = assistant[-1]
        try:
            delta = observation_token_ids(self.tokenizer, messages[: last + 1], messages[last + 1:], tools,
                                          self._last_completion, self.stops, self.chat_template_kwargs)
        except ValueError:
            self.rerendered += 1
            return prompt_token_ids(self.tokenizer, messages, tools, self.chat_template_kwargs)
        return self._ids + delta

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]):
        from swerve.rl.generation import generate_turn

        prompt = self.next_prompt_ids(messages, tools)
        with self.lock:
            completion = generate_turn(self.model, self.tokenizer, prompt, max_new_tokens=self.max_new_tokens,
                                       temperature=self.temperature, top_p=self.top_p, stops=self.stops)
        self._ids = list(prompt) + list(completion.completion_token_ids)
        self._last_completion = list(completion.completion_token_ids)
        return completion
