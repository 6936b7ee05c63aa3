"""What the in-process backends (hf, vllm) share: prompt token ids from the
tokenizer's own chat template, and the completion text from the sampled ids.

Tool calls written in the text (Hermes `<tool_call>` blocks) are left in the
text: the loop's parser (swerve.agents.tools.parse_turn) reads them, reports
malformed ones to the model, and records the turn without duplicating the
call. Filling `Completion.tool_calls` here would make the loop treat them as
native calls and keep the block in the message content as well."""

from __future__ import annotations

from typing import Any


def prompt_token_ids(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> list[int]:
    """Token ids of the conversation rendered by the tokenizer's chat template,
    ending with the generation prompt (the assistant header)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
            "use an instruct/chat model (swerve never invents a prompt format)"
        )
    ids = tokenizer.apply_chat_template(
        messages,
        tools=tools or None,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
        **(chat_template_kwargs or {}),
    )
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return [int(i) for i in ids]


def stop_token_ids(tokenizer: Any, generation_eos: Any = None) -> list[int]:
    """End-of-turn ids: the generation config's eos ids, the tokenizer's eos, and `<|im_end|>` if known."""
    found: list[int] = []
    candidates = generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]
    candidates = [*candidates, getattr(tokenizer, "eos_token_id", None)]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    for value in [*candidates, im_end]:
        if isinstance(value, int) and value >= 0 and value not in found:
            found.append(value)
    return found


def completion_text(tokenizer: Any, completion_ids: list[int], stops: list[int]) -> str:
    """The assistant message text: the sampled ids decoded as they are, special
    tokens kept (so the text re-renders to the same ids), minus a final end-of-turn
    token, which the chat template adds back itself."""
    body = completion_ids[:-1] if completion_ids and completion_ids[-1] in stops else completion_ids
    return tokenizer.decode(body, skip_special_tokens=False, clean_up_tokenization_spaces=False)

