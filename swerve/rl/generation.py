"""Sample one assistant turn from exact prompt token ids with an in-process model.

A trainer that owns the model (TRL's GRPOTrainer, a custom loop) generates from the
environment's token sequence (`info["prompt_token_ids"]`), not from a re-rendered
chat, so what it trains on is what it sampled. Decoding follows the hf policy
(swerve.agents.policies.chat_tokens): special tokens kept, final end-of-turn dropped.
"""

from __future__ import annotations

from typing import Any

from swerve.agents.policies.chat_tokens import completion_text, stop_token_ids
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
    import torch

    stops = stops or stop_token_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt_ids], device=device)
    sampling = temperature > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        "eos_token_id": stops,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0],
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
    finally:
        if was_training:
            model.train()
    generated = out.sequences[0, len(prompt_ids):].tolist()
    logprobs = [float(torch.log_softmax(step[0].float(), dim=-1)[token]) for step, token in zip(out.logits, generated)]
    text = completion_text(tokenizer, generated, stops)
    ended = bool(generated) and generated[-1] in stops
    return Completion(
        text=text,
        prompt_token_ids=list(prompt_ids),
        completion_token_ids=generated,
        logprobs=logprobs,
        finish_reason="stop" if ended else "length",
        usage={"prompt_tokens": len(prompt_ids), "completion_tokens": len(generated),
               "total_tokens": len(prompt_ids) + len(generated)},
    )
