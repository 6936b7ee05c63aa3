"""The hf policy's generation on a GPU with a random-weight Qwen3 of about 0.45B
parameters (Qwen3-0.6B's body: hidden 1024, 28 layers, 16 heads, 8 KV heads,
head_dim 128, MLP 3072; the vocabulary is the tiny test tokenizer's, so every
sampled id decodes). Checks that token ids and logprobs are recorded, that the
ids decode to the text, and how far the recorded logprobs are from a separate
forward pass; prints one JSON summary as its last line.

    python bench/gpu_hf_policy.py              # on the GPU machine
    python bench/gpu_hf_policy.py --small      # CPU dry run with the tiny model

Nothing is downloaded: the model is built locally (random weights, seed 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QWEN3_05B_BODY = dict(hidden_size=1024, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate_size=3072)
TINY = dict(hidden_size=64, layers=2, heads=4, kv_heads=2)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny model on the CPU (a dry run of this script)")
    parser.add_argument("--turns", type=int, default=4, help="completions to generate")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="tokens per completion")
    parser.add_argument("--dtype", default="bfloat16", help="torch dtype on the GPU (float32 with --small)")
    parser.add_argument("--model-dir", default="", help="where to build the model (default: a temp folder)")
    return parser.parse_args()


def _forward_logprobs(policy, prompt: list[int], completion: list[int]) -> list[float]:
    import torch

    full = torch.tensor([prompt + completion], device=policy.device)
    with torch.no_grad():
        logits = policy.model(full).logits[0].float()
    start = len(prompt)
    rows = torch.log_softmax(logits[start - 1 : start - 1 + len(completion)], dim=-1)
    return rows.gather(1, torch.tensor(completion, device=policy.device)[:, None])[:, 0].tolist()


def main() -> int:
    args = _arguments()
    import torch

    from swerve.agents.loop import EpisodeLimits, build_messages
    from swerve.agents.policies.hf import HFPolicy
    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.agents.tools import tool_schemas
    from swerve.schema import Task

    device = "cpu" if args.small else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "no GPU visible to torch; run with --small for a CPU dry run"}))
        return 2
    sizes = TINY if args.small else QWEN3_05B_BODY
    root = Path(args.model_dir) if args.model_dir else Path(tempfile.mkdtemp(prefix="swerve-bench-"))
    began = time.monotonic()
    folder = make_tiny_qwen3(root / ("tiny" if args.small else "qwen3-0.5b-random"), seed=0, **sizes)
    build_s = time.monotonic() - began

    policy = HFPolicy(
        str(folder),
        device=device,
        dtype="float32" if args.small else args.dtype,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        seed=0,
    )
    params = sum(p.numel() for p in policy.model.parameters())
    task = Task(instance_id="bench-1", repo="pytoolz/toolz", problem_statement="`frequencies` drops None values.")
    messages = build_messages(task, "/testbed", EpisodeLimits())
    tools = tool_schemas()

    turns = []
    max_diff = 0.0
    decode_exact = True
    for turn in range(args.turns):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.monotonic()
        completion = policy.act(messages, tools)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.monotonic() - started
        ids = completion.completion_token_ids or []
        body = ids[:-1] if completion.finish_reason == "stop" else ids
        decode_exact &= policy.tokenizer.decode(body, skip_special_tokens=False) == completion.text
        assert completion.logprobs is not None and len(completion.logprobs) == len(ids)
        reference = _forward_logprobs(policy, completion.prompt_token_ids, ids)
        diff = max((abs(a - b) for a, b in zip(completion.logprobs, reference)), default=0.0)
        max_diff = max(max_diff, diff)
        turns.append(
            {
                "turn": turn,
                "prompt_tokens": len(completion.prompt_token_ids),
                "completion_tokens": len(ids),
                "finish_reason": completion.finish_reason,
                "seconds": round(seconds, 3),
                "tokens_per_s": round(len(ids) / seconds, 1) if seconds else None,
                "mean_logprob": round(sum(completion.logprobs) / max(len(ids), 1), 4),
                "max_abs_logprob_diff_vs_forward": round(diff, 5),
            }
        )
        messages = [*messages, {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": "Format error: no tool call found."}]

    generated = sum(t["completion_tokens"] for t in turns)
    seconds = sum(t["seconds"] for t in turns)
    summary = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "dtype": str(policy.dtype).replace("torch.", ""),
        "parameters": params,
        "config": sizes,
        "model_build_s": round(build_s, 2),
        "turns": turns,
        "generated_tokens": generated,
        "tokens_per_s": round(generated / seconds, 1) if seconds else None,
        "ids_decode_to_text": decode_exact,
        "logprobs_recorded": all(t["completion_tokens"] > 0 for t in turns),
        "max_abs_logprob_diff_vs_forward": round(max_diff, 5),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
    }
    print(json.dumps(summary))
    return 0 if decode_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
