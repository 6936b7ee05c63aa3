"""A tiny random-weight Qwen3 model with a freshly trained tokenizer, for tests.

Tests across swerve (policies, the loop, RL rollouts, trainers) need a real
causal LM that loads with `AutoModelForCausalLM.from_pretrained(path)` and a
tokenizer whose chat template understands `tools`, without downloading
anything. `make_tiny_qwen3` writes one: Qwen3 architecture, random weights
(deterministic for a seed), a byte-level BPE tokenizer trained on the bundled
corpus, and a Qwen3-style chat template (ChatML `<|im_start|>`/`<|im_end|>`,
tools in `<tools>`, Hermes `<tool_call>` blocks, tool results in
`<tool_response>`). Its output is junk text, which is what the mechanics tests
want: it never produces a valid tool call by accident.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from swerve.agents.policies.tiny_corpus import CORPUS
from swerve.fileio import file_lock

FORMAT_VERSION = 3
MARKER_FILE = "swerve_tiny_model.json"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MARKUP_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
DEFAULT_VOCAB_SIZE = 1024

# How `transformers serve` (and `tokenizer.parse_response`) reads a reply: the raw
# text, unparsed. Without it the server falls back to its Qwen3 parser, which
# answers HTTP 500 whenever a `<tool_call>` region is not valid JSON (transformers
# 5.24) -- and a random model writes exactly that. Tool calls in the text are
# then parsed by swerve's loop, which reports malformed ones to the model.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {"content": {"close_pattern": r"\s*(?:<\|im_end\|>|<\|endoftext\|>)", "content": "text"}},
}

CHAT_TEMPLATE = r"""{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0].role == 'system' %}
{{- messages[0].content + '\n\n' }}
{%- endif %}
{{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
{%- for tool in tools %}
{{- "\n" }}{{- tool | tojson }}
{%- endfor %}
{{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{%- set content = message.content if message.content is string else '' %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
{{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant\n' + content }}
{%- if message.tool_calls %}
{%- for tool_call in message.tool_calls %}
{%- if (loop.first and content) or (not loop.first) %}{{- '\n' }}{%- endif %}
{%- if tool_call.function %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '<tool_call>\n{"name": "' + tool_call.name + '", "arguments": ' }}
{%- if tool_call.arguments is string %}{{- tool_call.arguments }}{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}
{{- '}\n</tool_call>' }}
{%- endfor %}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' + content + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}"""


def tiny_model_key(
    *,
    hidden_size: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab_size: int | None,
    seed: int,
    intermediate_size: int | None = None,
    head_dim: int | None = None,
) -> str:
    """A short hash of everything that determines the model's files."""
    recipe = {
        "format": FORMAT_VERSION,
        "intermediate_size": intermediate_size,
        "head_dim": head_dim,
        "hidden_size": hidden_size,
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "vocab_size": vocab_size,
        "seed": seed,
        "corpus": hashlib.sha256(CORPUS.encode()).hexdigest(),
        "template": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest(),
        "response_template": RESPONSE_TEMPLATE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def make_tiny_qwen3(
    out_dir: str | os.PathLike | None = None,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int | None = None,
    seed: int = 0,
    intermediate_size: int | None = None,
    head_dim: int | None = None,
) -> Path:
    """Write (or reuse) a tiny random Qwen3 model and its tokenizer; return the folder.

    `out_dir=None` uses swerve's cache (`$SWERVE_HOME/models/tiny-qwen3-<key>`).
    A folder already holding a model built from the same parameters is reused;
    the build goes to a temporary sibling folder that is renamed into place, so
    a killed build never leaves a half-written model behind.
    `vocab_size` is the BPE training target (default 1024; the bundled corpus
    yields fewer). The embedding table has exactly one row per token, so every
    id the model can sample decodes to text. `intermediate_size` defaults to
    3 * hidden_size and `head_dim` to hidden_size // heads (Qwen3-0.6B's body is
    hidden_size=1024, layers=28, heads=16, kv_heads=8, head_dim=128,
    intermediate_size=3072). Concurrent callers (threads or processes) wait
    for one build behind a lock file.
    """
    if (head_dim is None and hidden_size % heads) or heads % kv_heads:
        raise ValueError(
            f"tiny model: hidden_size ({hidden_size}) must divide by heads ({heads}) "
            f"and heads by kv_heads ({kv_heads}); pick compatible sizes"
        )
    key = tiny_model_key(
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        vocab_size=vocab_size,
        seed=seed,
        intermediate_size=intermediate_size,
        head_dim=head_dim,
    )
    if out_dir is None:
        from swerve.paths import cache_dir

        out_dir = cache_dir("models") / f"tiny-qwen3-{key}"
    out = Path(out_dir)
    if _built_with(out, key):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.parent / f".{out.name}.lock"):
        if _built_with(out, key):
            return out
        if out.exists() and any(out.iterdir()) and not (out / MARKER_FILE).exists():
            raise FileExistsError(f"{out} exists and is not a swerve tiny model; pass an empty or new folder")
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building."))
        try:
            tokenizer = _train_tokenizer(vocab_size or DEFAULT_VOCAB_SIZE)
            tokenizer.save_pretrained(staging)
            _write_model(
                staging,
                tokenizer,
                hidden_size=hidden_size,
                layers=layers,
                heads=heads,
                kv_heads=kv_heads,
                seed=seed,
                intermediate_size=intermediate_size or hidden_size * 3,
                head_dim=head_dim or hidden_size // heads,
            )
            (staging / MARKER_FILE).write_text(json.dumps({"key": key, "seed": seed}) + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _built_with(folder: Path, key: str) -> bool:
    try:
        return json.loads((folder / MARKER_FILE).read_text())["key"] == key
    except (OSError, ValueError, KeyError):
        return False


def _train_tokenizer(vocab_size: int):
    """Byte-level BPE trained on the bundled corpus, wrapped as a transformers tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        response_template=RESPONSE_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )


def _write_model(
    folder: Path,
    tokenizer,
    *,
    hidden_size: int,
    layers: int,
    heads: int,
    kv_heads: int,
    seed: int,
    intermediate_size: int,
    head_dim: int,
) -> None:
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    vocab = len(tokenizer)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad, do_sample=True, temperature=1.0, top_p=1.0
    )
    model.save_pretrained(folder)
