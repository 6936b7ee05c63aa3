"""Prefix trees over token sequences that share prefixes, and log-probs computed over them.

A GRPO group, a set of partial rollouts or the branches of a multi-turn tree search
repeat the same prompt (and often the same early turns) in every sequence. Forwarding
each sequence separately recomputes those shared tokens once per sequence. Here the
sequences are merged into a trie, serialised depth-first into one row, and forwarded
once with a tree-shaped attention mask (a token sees exactly its ancestors and itself)
and position ids equal to each token's depth. Every token then gets the same hidden
state it would get in its own sequence, so per-token log-probs and entropies match
per-sequence computation, while each shared prefix is computed once. The other
strategy, "segments", walks the tree with a KV cache used as a stack instead of a mask.

For training, one forward/backward over the tree replaces one per sequence: either
index the per-sequence views (`TreeLogprobs.logprobs`, differentiable) and write any
per-branch loss, or, for losses linear in the log-probs, weight each tree token by
`tree_loss_weights` (the summed weights of the branches passing through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

_MASKABLE_ATTENTION = ("eager", "sdpa")
Strategy = Literal["mask", "segments"]


@dataclass(frozen=True)
class Segment:
    """A maximal run of tree tokens with no fork inside: a unit for pruning and reports.

    `start`/`stop` are serial token indices (half-open); `sequences` are the ids of
    the input sequences whose path runs through this segment.
    """

    id: int
    start: int
    stop: int
    parent: int
    children: tuple[int, ...]
    sequences: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class SerialisedTree:
    """The model inputs for a whole tree in one row (batch size 1).

    `attention_mask` is boolean, True where a query token may attend to a key token;
    `parent_index[i]` is the serial index of token i's predecessor (-1 for a first
    token); `sequence_index[b]` lists the serial indices of sequence b's tokens.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    parent_index: torch.Tensor
    sequence_index: list[torch.Tensor]


@dataclass(frozen=True)
class PrefixTree:
    """A trie over token sequences, stored in depth-first (serial) order.

    Every ancestor of a token comes before it, and each segment's tokens are
    contiguous, so the attention mask and chunked forwarding stay simple.
    """

    token_ids: tuple[int, ...]
    parents: tuple[int, ...]
    depths: tuple[int, ...]
    branch_counts: tuple[int, ...]
    sequence_paths: tuple[tuple[int, ...], ...]
    segments: tuple[Segment, ...]
    token_segment: tuple[int, ...]

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> PrefixTree:
        """Merge `sequences` (lists of token ids) into a trie; duplicates share one path."""
        if len(sequences) == 0:
            raise ValueError("PrefixTree.build got no sequences; pass at least one list of token ids")
        children: list[dict[int, int]] = [{}]
        trie_token: list[int] = [-1]
        sequence_ends: list[int] = [0]
        trie_paths: list[list[int]] = []
        for number, sequence in enumerate(sequences):
            if len(sequence) == 0:
                raise ValueError(f"sequence {number} is empty; every sequence needs at least one token")
            node = 0
            path = []
            for token in sequence:
                token = int(token)
                following = children[node].get(token)
                if following is None:
                    following = len(trie_token)
                    children[node][token] = following
                    children.append({})
                    trie_token.append(token)
                    sequence_ends.append(0)
                node = following
                path.append(node)
            sequence_ends[node] += 1
            trie_paths.append(path)
        return cls._from_trie(children, trie_token, sequence_ends, trie_paths)

    @classmethod
    def _from_trie(cls, children, trie_token, sequence_ends, trie_paths) -> PrefixTree:
        serial_of = [-1] * len(trie_token)
        token_ids: list[int] = []
        parents: list[int] = []
        depths: list[int] = []
        stack = [(node, -1, 0) for node in reversed(list(children[0].values()))]
        while stack:
            node, parent_serial, depth = stack.pop()
            serial = len(token_ids)
            serial_of[node] = serial
            token_ids.append(trie_token[node])
            parents.append(parent_serial)
            depths.append(depth)
            for child in reversed(list(children[node].values())):
                stack.append((child, serial, depth + 1))

        sequence_paths = tuple(tuple(serial_of[node] for node in path) for path in trie_paths)
        counts = [0] * len(token_ids)
        for path in sequence_paths:
            for serial in path:
                counts[serial] += 1

        child_count = [0] * len(token_ids)
        ends_here = [0] * len(token_ids)
        for node, serial in enumerate(serial_of):
            if serial >= 0:
                ends_here[serial] = sequence_ends[node]
        for parent in parents:
            if parent >= 0:
                child_count[parent] += 1
        starts = [
            serial
            for serial, parent in enumerate(parents)
            if parent < 0 or child_count[parent] != 1 or ends_here[parent] > 0
        ]
        token_segment = [0] * len(token_ids)
        bounds = list(zip(starts, starts[1:] + [len(token_ids)]))
        for segment_id, (start, stop) in enumerate(bounds):
            for serial in range(start, stop):
                token_segment[serial] = segment_id
        segment_parent = [
            token_segment[parents[start]] if parents[start] >= 0 else -1 for start, _ in bounds
        ]
        segment_children: list[list[int]] = [[] for _ in bounds]
        for segment_id, parent in enumerate(segment_parent):
            if parent >= 0:
                segment_children[parent].append(segment_id)
        segment_sequences: list[set[int]] = [set() for _ in bounds]
        for number, path in enumerate(sequence_paths):
            for serial in path:
                segment_sequences[token_segment[serial]].add(number)
        segments = tuple(
            Segment(
                id=segment_id,
                start=start,
                stop=stop,
                parent=segment_parent[segment_id],
                children=tuple(segment_children[segment_id]),
                sequences=tuple(sorted(segment_sequences[segment_id])),
            )
            for segment_id, (start, stop) in enumerate(bounds)
        )
        return cls(
            token_ids=tuple(token_ids),
            parents=tuple(parents),
            depths=tuple(depths),
            branch_counts=tuple(counts),
            sequence_paths=sequence_paths,
            segments=segments,
            token_segment=tuple(token_segment),
        )

    @property
    def num_tokens(self) -> int:
        """Tokens forwarded for the whole tree."""
        return len(self.token_ids)

    @property
    def num_sequences(self) -> int:
        return len(self.sequence_paths)

    @property
    def num_sequence_tokens(self) -> int:
        """Tokens a per-sequence forward would process (sum of sequence lengths)."""
        return sum(len(path) for path in self.sequence_paths)

    def segment_ancestors(self, segment_id: int) -> list[int]:
        """Segment ids from the root down to (excluding) `segment_id`."""
        chain = []
        parent = self.segments[segment_id].parent
        while parent >= 0:
            chain.append(parent)
            parent = self.segments[parent].parent
        return chain[::-1]

    def attention_mask(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Boolean mask rows `start:stop` over key columns `0:stop` (True = may attend).

        Depth-first order puts every ancestor before its descendants, so a query
        chunk never needs keys after its own last token.
        """
        import torch

        stop = self.num_tokens if stop is None else stop
        if not 0 <= start < stop <= self.num_tokens:
            raise ValueError(f"mask rows {start}:{stop} are outside the tree's {self.num_tokens} tokens")
        mask = torch.zeros(stop - start, stop, dtype=torch.bool)
        first = self.token_segment[start]
        last = self.token_segment[stop - 1]
        for segment in self.segments[first : last + 1]:
            row_start = max(segment.start, start)
            row_stop = min(segment.stop, stop)
            rows = slice(row_start - start, row_stop - start)
            for ancestor in self.segment_ancestors(segment.id):
                span = self.segments[ancestor]
                mask[rows, span.start : span.stop] = True
            own = torch.ones(row_stop - row_start, row_stop - segment.start, dtype=torch.bool)
            mask[rows, segment.start : row_stop] = own.tril(row_start - segment.start)
        return mask

    def serialise(self) -> SerialisedTree:
        """Tensors for one forward pass over the whole tree (CPU; move them as needed)."""
        import torch

        return SerialisedTree(
            input_ids=torch.tensor([self.token_ids], dtype=torch.long),
            position_ids=torch.tensor([self.depths], dtype=torch.long),
            attention_mask=self.attention_mask()[None, None],
            parent_index=torch.tensor(self.parents, dtype=torch.long),
            sequence_index=[torch.tensor(path, dtype=torch.long) for path in self.sequence_paths],
        )


@dataclass(frozen=True)
class TreeLogprobs:
    """Per-token log-probs and entropies, over the tree and per input sequence.

    Tree-level tensors have one entry per serial token: the log-prob of that token
    given its ancestors, and the entropy of the distribution that predicted it
    (0 for a sequence's first token, which nothing predicts). Per-sequence tensors
    have `len(sequence) - 1` entries aligned with `sequence[1:]`, like a shifted
    causal-LM log-prob; they are differentiable views of the tree-level ones.
    """

    token_logprobs: torch.Tensor
    token_entropies: torch.Tensor
    logprobs: list[torch.Tensor]
    entropies: list[torch.Tensor]


def tree_logprobs(
    model: Any,
    tree: PrefixTree,
    *,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    head_chunk_size: int = 1024,
    recompute_head: bool = True,
    strategy: Strategy = "mask",
) -> TreeLogprobs:
    """Log-probs and entropies of every sequence in `tree`, shared prefixes computed once.

    `model` is a Hugging Face causal LM (Qwen3, Llama-style) loaded with
    attn_implementation "sdpa" or "eager". Gradients flow when grad mode is on.
    `chunk_size` forwards the tree in query chunks of that many tokens, reusing the
    keys/values of earlier chunks through a cache, so the mask and attention scores
    stay at chunk_size x tree_tokens; `head_chunk_size` bounds the logits held at once,
    and with `recompute_head` (when gradients are on) logits are recomputed in the
    backward pass instead of kept, so a training step never holds tokens x vocab.
    `strategy` chooses how the decoder runs over the tree (see `tree_hidden_states`).
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    hidden = tree_hidden_states(model, tree, chunk_size=chunk_size, strategy=strategy)
    head = model.get_output_embeddings()
    device = hidden.device
    token_ids = torch.tensor(tree.token_ids, dtype=torch.long, device=device)
    parents = torch.tensor(tree.parents, dtype=torch.long, device=device)
    predicted = torch.nonzero(parents >= 0).flatten()
    logprob_parts = []
    entropy_parts = []
    recompute = recompute_head and torch.is_grad_enabled() and hidden.requires_grad
    for begin in range(0, predicted.numel(), head_chunk_size):
        targets = predicted[begin : begin + head_chunk_size]
        arguments = (head, hidden[parents[targets]], token_ids[targets], temperature)
        if recompute:
            from torch.utils.checkpoint import checkpoint

            logprobs, entropies = checkpoint(_head_logprobs, *arguments, use_reentrant=False)
        else:
            logprobs, entropies = _head_logprobs(*arguments)
        logprob_parts.append(logprobs)
        entropy_parts.append(entropies)
    token_logprobs = torch.zeros(tree.num_tokens, dtype=torch.float32, device=device)
    token_entropies = torch.zeros(tree.num_tokens, dtype=torch.float32, device=device)
    if logprob_parts:
        token_logprobs = token_logprobs.index_put((predicted,), torch.cat(logprob_parts))
        token_entropies = token_entropies.index_put((predicted,), torch.cat(entropy_parts))
    paths = [torch.tensor(path[1:], dtype=torch.long, device=device) for path in tree.sequence_paths]
    return TreeLogprobs(
        token_logprobs=token_logprobs,
        token_entropies=token_entropies,
        logprobs=[token_logprobs[path] for path in paths],
        entropies=[token_entropies[path] for path in paths],
    )


def _head_logprobs(head: Any, hidden_rows: torch.Tensor, targets: torch.Tensor, temperature: float):
    """Log-prob of each target and entropy of each predicting distribution, from hidden rows."""
    import torch

    logits = head(hidden_rows).float()
    if temperature != 1.0:
        logits = logits / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    logprobs = log_probs.gather(-1, targets[:, None]).squeeze(-1)
    entropies = -(log_probs.exp() * log_probs).sum(-1)
    return logprobs, entropies


def tree_hidden_states(
    model: Any, tree: PrefixTree, *, chunk_size: int | None = None, strategy: Strategy = "mask"
) -> torch.Tensor:
    """Final hidden states (tree_tokens x hidden) of `model`'s decoder over the serialised tree.

    "mask": the whole tree (or query chunks of `chunk_size` tokens) in one forward
    with the tree attention mask; fewest calls, but each query scores every earlier
    tree token, sibling branches included, before the mask discards them.
    "segments": one forward per segment in depth-first order, with a KV cache cut
    back to the segment's ancestors before each (a stack), so attention scores only
    the real prefix, as a per-sequence forward would; more calls, better for long,
    weakly shared trees.
    """
    if strategy not in ("mask", "segments"):
        raise ValueError(f"strategy must be 'mask' or 'segments', got {strategy!r}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of tokens, got {chunk_size}")
    layer_types = set(getattr(model.config, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"}:
        raise ValueError(
            f"tree log-probs support full-attention layers only, but this model has {sorted(layer_types)}; "
            f"use sequence_logprobs for it (or disable sliding windows in its config)"
        )
    if strategy == "segments":
        return _segment_hidden_states(model, tree)
    return _masked_hidden_states(model, tree, chunk_size)


def _masked_hidden_states(model: Any, tree: PrefixTree, chunk_size: int | None) -> torch.Tensor:
    import torch

    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation not in _MASKABLE_ATTENTION:
        raise ValueError(
            f"tree log-probs need a custom 4D attention mask, which attn_implementation={implementation!r} "
            f"ignores; load the model with attn_implementation='sdpa' (or 'eager'), or use strategy='segments'"
        )
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    decoder = model.get_decoder()
    token_ids = torch.tensor([tree.token_ids], dtype=torch.long, device=device)
    positions = torch.tensor([tree.depths], dtype=torch.long, device=device)
    step = tree.num_tokens if chunk_size is None else chunk_size
    cache = None
    if step < tree.num_tokens:
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
    parts = []
    for start in range(0, tree.num_tokens, step):
        stop = min(start + step, tree.num_tokens)
        allowed = tree.attention_mask(start, stop).to(device)
        additive = torch.zeros(allowed.shape, dtype=dtype, device=device)
        additive = additive.masked_fill(~allowed, torch.finfo(dtype).min)[None, None]
        output = decoder(
            input_ids=token_ids[:, start:stop],
            position_ids=positions[:, start:stop],
            attention_mask=additive,
            cache=cache,
            use_cache=cache is not None,
        )
        parts.append(output.last_hidden_state[0])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _segment_hidden_states(model: Any, tree: PrefixTree) -> torch.Tensor:
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    decoder = model.get_decoder()
    token_ids = torch.tensor([tree.token_ids], dtype=torch.long, device=device)
    positions = torch.tensor([tree.depths], dtype=torch.long, device=device)
    cache = DynamicCache(config=model.config)
    parts = []
    for segment in tree.segments:
        surplus = cache.get_seq_length() - tree.depths[segment.start]
        if surplus > 0:
            cache.crop(-surplus)
        output = decoder(
            input_ids=token_ids[:, segment.start : segment.stop],
            position_ids=positions[:, segment.start : segment.stop],
            cache=cache,
            use_cache=True,
        )
        parts.append(output.last_hidden_state[0])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def sequence_logprobs(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    temperature: float = 1.0,
    batch_size: int = 1,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The per-sequence baseline: (log-probs, entropies) per sequence, aligned with `sequence[1:]`.

    Sequences are forwarded `batch_size` at a time, right-padded; this is what the
    tree computation must match and what the benchmark compares it against.
    """
    import torch

    parameter = next(model.parameters())
    device = parameter.device
    logprobs: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    for begin in range(0, len(sequences), batch_size):
        batch = [list(map(int, sequence)) for sequence in sequences[begin : begin + batch_size]]
        longest = max(len(sequence) for sequence in batch)
        ids = torch.zeros(len(batch), longest, dtype=torch.long, device=device)
        present = torch.zeros(len(batch), longest, dtype=torch.long, device=device)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = torch.tensor(sequence, device=device)
            present[row, : len(sequence)] = 1
        mask = present if len(batch) > 1 else None
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        if temperature != 1.0:
            logits = logits / temperature
        for row, sequence in enumerate(batch):
            log_probs = torch.log_softmax(logits[row, : len(sequence) - 1], dim=-1)
            targets = ids[row, 1 : len(sequence), None]
            logprobs.append(log_probs.gather(-1, targets).squeeze(-1))
            entropies.append(-(log_probs.exp() * log_probs).sum(-1))
    return logprobs, entropies


def tree_loss_weights(
    tree: PrefixTree,
    sequence_weights: Sequence[float] | None = None,
    token_masks: Sequence[Sequence[float]] | None = None,
) -> torch.Tensor:
    """Per-tree-token weights that turn one tree loss into the average over branches.

    With `loss_b = sequence_weights[b] * sum_t token_masks[b][t] * f(logprob_b[t])`
    for f linear (e.g. -advantage * logprob), `sum_i weights[i] * f(token_logprobs[i])`
    over the tree has the same value and gradient as `sum_b loss_b`. The default
    weight 1/num_sequences gives each token the share of branches passing through it.
    Masks are per sequence token (length `len(sequence)`); a first token has no
    log-prob, so its weight is 0. Fold per-sequence advantages or 1/length
    normalisation into `sequence_weights`.
    """
    import torch

    count = tree.num_sequences
    if sequence_weights is None:
        sequence_weights = [1.0 / count] * count
    if len(sequence_weights) != count:
        raise ValueError(
            f"sequence_weights has {len(sequence_weights)} entries for {count} sequences; pass one per sequence"
        )
    if token_masks is not None and len(token_masks) != count:
        raise ValueError(
            f"token_masks has {len(token_masks)} entries for {count} sequences; pass one mask per sequence"
        )
    weights = torch.zeros(tree.num_tokens, dtype=torch.float64)
    for number, path in enumerate(tree.sequence_paths):
        values = torch.full((len(path),), float(sequence_weights[number]), dtype=torch.float64)
        if token_masks is not None:
            mask = token_masks[number]
            if len(mask) != len(path):
                raise ValueError(
                    f"token_masks[{number}] has {len(mask)} entries but sequence {number} has {len(path)} tokens; "
                    f"give one mask value per token"
                )
            values = values * torch.tensor([float(value) for value in mask], dtype=torch.float64)
        weights.index_add_(0, torch.tensor(path[1:], dtype=torch.long), values[1:])
    return weights.float()
