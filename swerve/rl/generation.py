"""Sample one assistant turn from exact prompt token ids with an in-process model.

A trainer that owns the model (TRL's GRPOTrainer, a custom loop) generates from the
environment's token sequence (`info["prompt_token_ids"]`), not from a re-rendered
chat, so what it trains on is what it sampled. Sampling and decoding are the hf
policy's (swerve.agents.policies.hf.generate_completion): special tokens kept,
final end-of-turn dropped.
"""

from __future__ import annotations

from typing import Any

from swerve.agents.policies.chat_tokens import stop_token_ids
from swerve.agents.policies.hf import generate_completion
from swerve.schema import Completion


def generate_turn(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    *,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    stops: list[int] | None = None,
) -> Completion:
    """Sample up to `max_new_tokens` after `prompt_ids`; the Completion carries the
    prompt ids, the sampled ids and their raw-model logprobs. Tool calls stay in the
    text, where the loop's parser (swerve.agents.tools.parse_turn) reads them."""
    stops = stops or stop_token_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
    return generate_completion(model, tokenizer, prompt_ids, stops, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p)
