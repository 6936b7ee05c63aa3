"""Prefix-tree log-probs against per-sequence log-probs on one GRPO-style group.

A group of trajectories shares a prompt and branches at every turn (branching
factors per turn, e.g. 2,2,2 gives 8 trajectories). Both methods run on the same
random-weight Qwen3-architecture model in the same process, interleaved and
repeated; the medians are compared. The last line printed is a JSON object with
token_ratio (naive / tree tokens), speedup (naive / tree wall time) and
max_abs_diff (largest log-prob difference between the two).

    python bench/logprobs.py                       # tiny model, CPU, a couple of minutes
    python bench/logprobs.py --device cuda --large # ~0.5B config on a GPU
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time


def small_config_kwargs() -> dict:
    return dict(
        vocab_size=8192,
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=4096,
    )


def large_config_kwargs() -> dict:
    """About 0.6B parameters, the shape of Qwen3-0.6B."""
    return dict(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
    )


def build_group(
    rng: random.Random, vocab: int, prompt_tokens: int, branching: list[int], turn_range: tuple[int, int]
) -> list[list[int]]:
    """Trajectories that share a prompt and split into `branching[k]` children at turn k."""
    frontier = [[rng.randrange(vocab) for _ in range(prompt_tokens)]]
    for factor in branching:
        grown = []
        for prefix in frontier:
            for _ in range(factor):
                turn = [rng.randrange(vocab) for _ in range(rng.randint(*turn_range))]
                grown.append(prefix + turn)
        frontier = grown
    return frontier


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--large", action="store_true", help="use a ~0.5B Qwen3 config instead of the tiny one")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--branching", default="2,2,2", help="children per node at each turn (product = group size)")
    parser.add_argument("--turn-tokens", default="32-64", help="range of tokens per turn, LOW-HIGH (a tool-call turn)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each method (medians reported)")
    parser.add_argument(
        "--naive-batch-size", type=int, default=None,
        help="sequences per naive forward (default: 1 on CPU, all on GPU)",
    )
    parser.add_argument("--backward", action="store_true", help="time forward + backward of a policy-gradient loss")
    parser.add_argument("--strategy", default="mask", choices=["mask", "segments"], help="how the tree is forwarded")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from swerve.rl.prefix_tree import PrefixTree, sequence_logprobs, tree_logprobs, tree_loss_weights

    branching = [int(part) for part in args.branching.split(",")]
    low, high = (int(part) for part in args.turn_tokens.split("-"))
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config_kwargs = large_config_kwargs() if args.large else small_config_kwargs()
    config = Qwen3Config(**config_kwargs, attn_implementation="sdpa")
    model = Qwen3ForCausalLM(config).to(device=args.device, dtype=torch.float32).eval()
    parameters = sum(p.numel() for p in model.parameters())

    sequences = build_group(random.Random(args.seed), config.vocab_size, args.prompt_tokens, branching, (low, high))
    tree = PrefixTree.build(sequences)
    naive_batch = args.naive_batch_size or (1 if args.device == "cpu" else len(sequences))

    def synchronise() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    weights = tree_loss_weights(tree).to(args.device)

    def run_tree():
        if not args.backward:
            with torch.no_grad():
                return tree_logprobs(model, tree, strategy=args.strategy)
        model.zero_grad(set_to_none=True)
        result = tree_logprobs(model, tree, strategy=args.strategy)
        (-(weights * result.token_logprobs).sum()).backward()
        return result

    def run_naive():
        if not args.backward:
            with torch.no_grad():
                return sequence_logprobs(model, sequences, batch_size=naive_batch)
        model.zero_grad(set_to_none=True)
        result = sequence_logprobs(model, sequences, batch_size=naive_batch)
        (-sum(lp.sum() for lp in result[0]) / len(sequences)).backward()
        return result

    def timed(function):
        synchronise()
        began = time.perf_counter()
        result = function()
        synchronise()
        return time.perf_counter() - began, result

    mode = "forward + backward (training)" if args.backward else "forward only (old/reference log-probs)"
    print(f"model: Qwen3 random weights, {parameters / 1e6:.1f}M parameters, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, {mode}")
    print(f"group: {len(sequences)} sequences, prompt {args.prompt_tokens} tokens, branching {branching}, "
          f"turns {low}-{high} tokens, {len(tree.segments)} tree segments, strategy {args.strategy}")
    run_tree()
    run_naive()
    tree_times, naive_times = [], []
    tree_result = naive_result = None
    for repeat in range(args.repeats):
        order = [("tree", run_tree), ("naive", run_naive)]
        if repeat % 2:
            order.reverse()
        for name, function in order:
            seconds, result = timed(function)
            if name == "tree":
                tree_times.append(seconds)
                tree_result = result
            else:
                naive_times.append(seconds)
                naive_result = result

    naive_logprobs, naive_entropies = naive_result
    max_abs_diff = max(
        (a.cpu() - b.cpu()).abs().max().item() for a, b in zip(tree_result.logprobs, naive_logprobs) if a.numel()
    )
    max_entropy_diff = max(
        (a.cpu() - b.cpu()).abs().max().item() for a, b in zip(tree_result.entropies, naive_entropies) if a.numel()
    )
    naive_tokens = tree.num_sequence_tokens
    tree_tokens = tree.num_tokens
    tree_seconds = statistics.median(tree_times)
    naive_seconds = statistics.median(naive_times)
    speedup = statistics.median(naive / tree for naive, tree in zip(naive_times, tree_times))
    print(f"tokens forwarded: naive {naive_tokens}, tree {tree_tokens}  (ratio {naive_tokens / tree_tokens:.2f}x)")
    print(f"wall time (median of {args.repeats}): naive {naive_seconds:.3f}s, tree {tree_seconds:.3f}s  "
          f"(median of paired ratios {speedup:.2f}x)")
    print(f"naive runs: {', '.join(f'{t:.3f}' for t in naive_times)}")
    print(f"tree runs:  {', '.join(f'{t:.3f}' for t in tree_times)}")
    print(f"max |logprob diff| {max_abs_diff:.2e}, max |entropy diff| {max_entropy_diff:.2e}")
    print(json.dumps({
        "device": args.device,
        "large": args.large,
        "parameters": parameters,
        "sequences": len(sequences),
        "branching": branching,
        "naive_tokens": naive_tokens,
        "tree_tokens": tree_tokens,
        "token_ratio": round(naive_tokens / tree_tokens, 3),
        "naive_seconds": round(naive_seconds, 4),
        "tree_seconds": round(tree_seconds, 4),
        "speedup": round(speedup, 3),
        "backward": args.backward,
        "strategy": args.strategy,
        "max_abs_diff": max_abs_diff,
        "max_entropy_diff": max_entropy_diff,
    }))


if __name__ == "__main__":
    main()
