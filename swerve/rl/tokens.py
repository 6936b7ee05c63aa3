"""Token-in-token-out: one multi-turn episode as the exact token sequence a trainer
optimises, never a re-tokenisation of the chat.

The sequence is `prompt ids of turn 0` + `generated ids of turn 0` + `observation
ids` + `generated ids of turn 1` + ... The generated ids are stored exactly as the
policy sampled them (mask 1, with their logprobs); everything else (the opening
prompt, tool responses, chat-template glue between turns) has mask 0.

Observation ids come from one of two places:
- the policy rendered each prompt itself (`Completion.prompt_token_ids`, as the hf
  and vLLM backends do): the next prompt must extend the sequence so far, and the
  new part is the observation. When it does not (the template re-rendered an
  earlier turn differently), `retokenized` is set: the trainer is told, not fooled.
- the caller generates from our sequence (`next_prompt_ids`): the observation is
  rendered as a template delta (`observation_token_ids`) and appended, so the model
  always continues the very ids it produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenTrajectory:
    """The token view of one episode (a trainer's training row)."""

    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_spans: list[tuple[int, int]] = field(default_factory=list)
    policy_versions: list[int] = field(default_factory=list)
    rollout_id: str = ""
    retokenized: bool = False

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def policy_version(self) -> int | None:
        """The oldest policy version that produced a token of this episode."""
        return min(self.policy_versions) if self.policy_versions else None

    def policy_token_ids(self) -> list[list[int]]:
        """The ids the policy generated, one list per turn (spans index `completion_ids`)."""
        return [self.completion_ids[start:end] for start, end in self.turn_spans]

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_ids": self.prompt_ids,
            "completion_ids": self.completion_ids,
            "loss_mask": self.loss_mask,
            "logprobs": self.logprobs,
            "turn_spans": [list(span) for span in self.turn_spans],
            "policy_versions": self.policy_versions,
            "policy_version": self.policy_version,
            "rollout_id": self.rollout_id,
            "retokenized": self.retokenized,
        }


def render_text(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                add_generation_prompt: bool, chat_template_kwargs: dict[str, Any] | None = None) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools or None, add_generation_prompt=add_generation_prompt, tokenize=False,
        **(chat_template_kwargs or {}),
    )


def observation_token_ids(
    tokenizer: Any,
    history: list[dict[str, Any]],
    observation: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    last_completion_ids: list[int],
    stop_ids: list[int],
    chat_template_kwargs: dict[str, Any] | None = None,
) -> list[int]:
    """The ids that follow the policy's last generated token up to the next
    assistant header: template glue after the end-of-turn token, the observation
    messages, and the generation prompt.

    Rendered as a text delta of the chat template (history + observation vs history),
    so earlier turns are never re-tokenised. When the last turn did not end in a stop
    token (cut at max tokens) the template's own end-of-turn is included here, masked.
    """
    before = render_text(tokenizer, history, tools, False, chat_template_kwargs)
    after = render_text(tokenizer, history + observation, tools, True, chat_template_kwargs)
    if not after.startswith(before):
        raise ValueError("chat template re-renders earlier turns when an observation is added; "
                         "use a policy that returns prompt_token_ids, or a template without history edits")
    delta = after[len(before):]
    glue = ""
    stop_texts = [tokenizer.decode([i], skip_special_tokens=False) for i in stop_ids]
    ended = bool(last_completion_ids) and last_completion_ids[-1] in stop_ids
    positions = [(before.rfind(text), text) for text in stop_texts if text and before.rfind(text) >= 0]
    if positions:
        at, text = max(positions)
        glue = before[at + len(text):] if ended else before[at:]
    return list(tokenizer.encode(glue + delta, add_special_tokens=False))


class TokenRecorder:
    """Builds a TokenTrajectory turn by turn as an episode runs."""

    def __init__(self, rollout_id: str = "", tokenizer: Any = None,
                 chat_template_kwargs: dict[str, Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.stop_ids: list[int] = []
        if tokenizer is not None:
            from swerve.agents.policies.chat_tokens import stop_token_ids

            self.stop_ids = stop_token_ids(tokenizer)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.tokens = TokenTrajectory(rollout_id=rollout_id)
        self.pending: list[int] = []
        self.complete = True

    def start(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int] | None:
        """Render the opening prompt (when a tokenizer is known) and return its ids."""
        if self.tokenizer is None:
            return None
        from swerve.agents.policies.chat_tokens import prompt_token_ids

        self.tokens.prompt_ids = prompt_token_ids(self.tokenizer, messages, tools, self.chat_template_kwargs)
        return list(self.tokens.prompt_ids)

    @property
    def next_prompt_ids(self) -> list[int] | None:
        """The exact ids the policy should continue from next (None without tokens)."""
        if not self.tokens.prompt_ids:
            return None
        return self.tokens.prompt_ids + self.tokens.completion_ids + self.pending

    def add_turn(self, prompt_ids: list[int] | None, completion_ids: list[int] | None,
                 logprobs: list[float] | None, policy_version: int = 0) -> None:
        """Record one generated turn; a turn without ids marks the episode as untokenised."""
        if completion_ids is None:
            self.complete = False
            return
        tokens = self.tokens
        if not tokens.prompt_ids:
            if prompt_ids is None:
                self.complete = False
                return
            tokens.prompt_ids = list(prompt_ids)
        elif prompt_ids is not None:
            so_far = tokens.prompt_ids + tokens.completion_ids
            if list(prompt_ids[: len(so_far)]) == so_far:
                self.pending = list(prompt_ids[len(so_far):])
            else:
                tokens.retokenized = True
                self.pending = list(prompt_ids[len(so_far):]) if len(prompt_ids) > len(so_far) else []
        tokens.completion_ids.extend(self.pending)
        tokens.loss_mask.extend([0] * len(self.pending))
        tokens.logprobs.extend([0.0] * len(self.pending))
        self.pending = []
        start = len(tokens.completion_ids)
        tokens.completion_ids.extend(int(i) for i in completion_ids)
        tokens.loss_mask.extend([1] * len(completion_ids))
        values = list(logprobs) if logprobs is not None else [0.0] * len(completion_ids)
        if len(values) != len(completion_ids):
            raise ValueError(f"turn has {len(completion_ids)} token ids but {len(values)} logprobs")
        tokens.logprobs.extend(float(v) for v in values)
        tokens.turn_spans.append((start, len(tokens.completion_ids)))
        tokens.policy_versions.append(int(policy_version))

    def add_observation(self, history: list[dict[str, Any]], observation: list[dict[str, Any]],
                        tools: list[dict[str, Any]]) -> list[int] | None:
        """Render the observation as template ids waiting for the next turn (tokenizer mode)."""
        if self.tokenizer is None or not self.tokens.turn_spans:
            return None
        last = self.tokens.completion_ids[slice(*self.tokens.turn_spans[-1])]
        self.pending = observation_token_ids(self.tokenizer, history, observation, tools, last,
                                             self.stop_ids, self.chat_template_kwargs)
        return self.pending

    def result(self) -> TokenTrajectory | None:
        """The token trajectory, or None when some turn came without token ids."""
        if not self.complete or not self.tokens.prompt_ids:
            return None
        return self.tokens
