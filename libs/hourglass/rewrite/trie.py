"""Prefix trie of all valid variable-length SIDs: compact for 10M SIDs, fast inside beam search.

Layout (CSR, breadth-first): node 0 is the root; nodes are numbered depth by depth and, within a
depth, in lexicographic order of their token-id prefix. In that order every non-root node has
exactly one incoming edge and the edges of a parent are contiguous, so edge `e` leads to node
`e + 1` and only three arrays are needed:

- `offsets[n] : offsets[n + 1]` — the edges (children) of node `n`;
- `edge_tokens[e]` — token id on edge `e`, ascending within each node (binary search);
- `terminal[n]` — the path root → `n` is a whole SID. A SID may be a prefix of another SID once
  lengths vary (topk keeps `<a_1> <c_5>` next to `<a_1> <b_2> <c_5>`), hence marks, not leaves.

Token ids index the sorted vocabulary (`vocab`, plain `sorted()` string order), which is stored
in the file, so the ids a beam search uses are stable for one trie file. Memory is about
`9 bytes × nodes` (int32 offsets/tokens, bool marks); 10M 3-token SIDs need ~20M nodes.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "hourglass-sid-trie"
FORMAT_VERSION = 1
_CHUNK = 262_144


class _Encoder:
    """Accumulates SIDs as int32 token ids per chunk, so the builder never holds Python lists."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.flat: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []

    def add_chunk(self, chunk: list[Sequence[str]]) -> None:
        get = self.ids.setdefault
        flat = [get(t, len(self.ids)) for sid in chunk for t in sid]
        self.flat.append(np.asarray(flat, dtype=np.int32))
        self.lengths.append(np.fromiter((len(s) for s in chunk), dtype=np.int32, count=len(chunk)))

    def matrix(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Padded (n, depth) matrix of sorted-vocab ids (-1 = no token), lengths, vocab."""
        vocab = sorted(self.ids)
        remap = np.empty(len(vocab), dtype=np.int32)
        for new, tok in enumerate(vocab):
            remap[self.ids[tok]] = new
        # one array each, the chunks dropped: they would double the tokens' memory
        self.lengths = [np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int32)]
        self.flat = [np.concatenate(self.flat) if self.flat else np.zeros(0, np.int32)]
        lengths, flat = self.lengths[0], self.flat[0]
        if np.any(lengths == 0):
            raise ValueError("a SID must have at least one token")
        depth = int(lengths.max()) if len(lengths) else 0
        mat = np.full((len(lengths), depth), -1, dtype=np.int32)
        # a column at a time: int64 temporaries of one id per SID, not one per token (at 10^8
        # SIDs the per-token row/column indices alone were ~7 GB of the driver's 15.7 GB)
        start = np.cumsum(lengths, dtype=np.int64) - lengths
        for d in range(depth):
            alive = lengths > d
            at = start[alive]
            at += d
            mat[alive, d] = remap[flat[at]]
            del at
        return mat, lengths, vocab


def _csr_from_matrix(mat: np.ndarray, lengths: np.ndarray):
    """Sorted, de-duplicated padded rows → (offsets, edge_tokens, terminal, n_sids)."""
    n, depth = mat.shape
    if n == 0:
        return np.zeros(2, np.int64), np.zeros(0, np.int32), np.zeros(1, bool), 0
    # -1 padding sorts first, so a SID precedes its own extensions (lexicographic order).
    order = np.lexsort(mat.T[::-1])
    mat, lengths = mat[order], lengths[order]
    del order
    keep = np.ones(n, dtype=bool)
    keep[1:] = np.any(mat[1:] != mat[:-1], axis=1)
    mat, lengths = mat[keep], lengths[keep]
    del keep
    n = len(lengths)
    # node ids fit int32 below 2^31 tokens: halves the per-SID temporaries (a driver at 10^8)
    node_dtype = np.int32 if n * depth < 2**31 - 1 else np.int64
    row_node = np.zeros(n, dtype=node_dtype)  # node of each row's prefix at the current depth
    changed = np.zeros(n, dtype=bool)
    parents, tokens = [], []
    terminal_nodes = []
    next_id = 1
    for d in range(depth):
        changed[1:] |= mat[1:, d] != mat[:-1, d]
        changed[0] = True
        alive = lengths > d
        new = alive & changed
        # the id the latest new node at or before each row got
        ids = np.cumsum(new, dtype=node_dtype)
        ids += next_id - 1
        parents.append(row_node[new])
        tokens.append(mat[new, d])
        np.copyto(row_node, ids, where=alive)
        del ids
        next_id += int(new.sum())
        terminal_nodes.append(row_node[lengths == d + 1])
    parent = np.concatenate(parents)
    del parents
    edge_tokens = np.concatenate(tokens).astype(np.int32)
    del tokens
    n_nodes = next_id
    counts = np.bincount(parent, minlength=n_nodes)
    idx_dtype = np.int32 if len(edge_tokens) < 2**31 - 1 else np.int64
    offsets = np.zeros(n_nodes + 1, dtype=idx_dtype)
    np.cumsum(counts, out=offsets[1:])
    terminal = np.zeros(n_nodes, dtype=bool)
    terminal[np.concatenate(terminal_nodes)] = True
    return offsets, edge_tokens, terminal, n


class SidTrieBuilder:
    """Incremental builder: `add` SIDs one at a time (e.g. from a Spark stream), then `build`.

    SIDs are converted to int32 ids every `_CHUNK` additions, so memory is ~4 bytes per token
    plus the final arrays, not Python lists of strings.
    """

    def __init__(self) -> None:
        self._enc = _Encoder()
        self._pending: list[Sequence[str]] = []

    def add(self, sid: Sequence[str]) -> None:
        self._pending.append(sid)
        if len(self._pending) >= _CHUNK:
            self._flush()

    def extend(self, sids: Iterable[Sequence[str]]) -> SidTrieBuilder:
        for sid in sids:
            self.add(sid)
        return self

    def add_arrow(self, sids) -> SidTrieBuilder:
        """Add a pyarrow list<string> array of SIDs without a Python object per SID or token:
        the tokens are dictionary-encoded by Arrow and only the (small) dictionary is mapped."""
        import pyarrow as pa
        import pyarrow.compute as pc

        self._flush()  # keep the order of ids stable with any SIDs added one by one
        chunks = sids.chunks if isinstance(sids, pa.ChunkedArray) else [sids]
        for chunk in chunks:
            if chunk.null_count:
                raise ValueError("a SID must not be null")
            encoded = pc.dictionary_encode(chunk.flatten())
            get = self._enc.ids.setdefault
            to_global = np.array([get(t, len(self._enc.ids))
                                  for t in encoded.dictionary.to_pylist()], dtype=np.int32)
            indices = encoded.indices.to_numpy(zero_copy_only=False)
            self._enc.flat.append(to_global[indices])
            self._enc.lengths.append(
                pc.list_value_length(chunk).to_numpy(zero_copy_only=False).astype(np.int32))
        return self

    def _flush(self) -> None:
        if self._pending:
            self._enc.add_chunk(self._pending)
            self._pending = []

    def build(self, meta: dict[str, Any] | None = None) -> SidTrie:
        """The trie of the distinct SIDs added so far."""
        self._flush()
        mat, lengths, vocab = self._enc.matrix()
        offsets, edge_tokens, terminal, n = _csr_from_matrix(mat, lengths)
        return SidTrie(offsets, edge_tokens, terminal, vocab, n, meta)


class SidTrie:
    """Immutable prefix trie over SID token strings, with an integer node/token-id fast path.

    String API (`allowed_next`, `is_complete`, `in`) for clarity; integer API (`root`,
    `child`, `children`, `is_terminal`, `step`) for beam search, where a node id is the state of
    one beam and token ids index `vocab`.
    """

    root = 0

    def __init__(self, offsets: np.ndarray, edge_tokens: np.ndarray, terminal: np.ndarray,
                 vocab: list[str], n_sids: int, meta: dict[str, Any] | None = None) -> None:
        self.offsets = np.ascontiguousarray(offsets)
        self.edge_tokens = np.ascontiguousarray(edge_tokens)
        self.terminal = np.ascontiguousarray(terminal, dtype=bool)
        # Scalar lookups go through memoryviews: indexing them yields plain ints and `bisect`
        # accepts them, ~5x faster per call than numpy scalar indexing plus searchsorted.
        self._off = memoryview(self.offsets)
        self._tok = memoryview(self.edge_tokens)
        self._term = memoryview(self.terminal)
        self._vocab = list(vocab)
        self.token_to_id = {t: i for i, t in enumerate(self._vocab)}
        self._n_sids = int(n_sids)
        self.meta = dict(meta or {})
        self._max_depth = self._depth_of_tree()

    def __reduce__(self):
        """Pickle the arrays, not the memoryviews (for DataLoader workers, Spark broadcast)."""
        return (type(self), (self.offsets, self.edge_tokens, self.terminal, self._vocab,
                             self._n_sids, self.meta))

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, sids: Iterable[Sequence[str]], meta: dict[str, Any] | None = None) -> SidTrie:
        """Trie of the distinct SIDs in `sids` (any iterable; streamed in chunks)."""
        return SidTrieBuilder().extend(sids).build(meta)

    def _depth_of_tree(self) -> int:
        depth, lo, hi = 0, 0, 1  # node range [lo, hi) of the current depth
        while self.offsets[hi] > self.offsets[lo]:
            lo, hi = int(self.offsets[lo]) + 1, int(self.offsets[hi]) + 1
            depth += 1
        return depth

    # ---- integer fast path --------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.terminal)

    def token_id(self, token: str) -> int:
        """Id of `token` in `vocab`, or -1 when it is not in the vocabulary."""
        return self.token_to_id.get(token, -1)

    def children(self, node: int) -> np.ndarray:
        """Token ids allowed after `node`, ascending (a view: do not modify)."""
        return self.edge_tokens[self.offsets[node]:self.offsets[node + 1]]

    def child(self, node: int, token_id: int) -> int:
        """Node reached from `node` by `token_id`, or -1 when that edge does not exist."""
        hi = self._off[node + 1]
        e = bisect_left(self._tok, token_id, self._off[node], hi)
        return e + 1 if e < hi and self._tok[e] == token_id else -1

    def is_terminal(self, node: int) -> bool:
        return node >= 0 and self._term[node]

    def step(self, nodes: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
        """Vectorized `child` for a batch of beams; -1 in, or a missing edge, gives -1."""
        nodes = np.asarray(nodes, dtype=np.int64)
        toks = np.asarray(token_ids, dtype=np.int64)
        ok = nodes >= 0
        safe = np.where(ok, nodes, 0)
        lo = self.offsets[safe].astype(np.int64)
        hi = self.offsets[safe + 1].astype(np.int64)
        end = hi.copy()
        while np.any(lo < hi):  # lower bound by bisection, all beams at once
            active = lo < hi
            mid = (lo + hi) // 2
            probe = self.edge_tokens[np.minimum(mid, len(self.edge_tokens) - 1)]
            go_right = active & (probe < toks)
            lo = np.where(go_right, mid + 1, lo)
            hi = np.where(active & ~go_right, mid, hi)
        hit = ok & (lo < end)
        hit[hit] = self.edge_tokens[lo[hit]] == toks[hit]
        return np.where(hit, lo + 1, -1)

    def walk(self, prefix: Sequence[str]) -> int:
        """Node of a token-string prefix, or -1 when no SID starts with it."""
        node = self.root
        for tok in prefix:
            tid = self.token_to_id.get(tok)
            if tid is None:
                return -1
            node = self.child(node, tid)
            if node < 0:
                return -1
        return node

    # ---- string API ---------------------------------------------------------------------
    def allowed_next(self, prefix: Sequence[str]) -> list[str]:
        """Tokens that extend `prefix` toward some SID; [] if invalid or nothing extends it."""
        node = self.walk(prefix)
        if node < 0:
            return []
        vocab = self._vocab
        return [vocab[t] for t in self._tok[self._off[node]:self._off[node + 1]]]

    def is_complete(self, prefix: Sequence[str]) -> bool:
        """True when `prefix` is itself a whole SID (it may still extend to longer ones)."""
        return self.is_terminal(self.walk(prefix))

    def __contains__(self, sid: object) -> bool:
        if isinstance(sid, str) or not isinstance(sid, Sequence):
            return False
        return len(sid) > 0 and self.is_complete(sid)

    def __len__(self) -> int:
        return self._n_sids

    @property
    def vocab(self) -> list[str]:
        return list(self._vocab)

    @property
    def max_depth(self) -> int:
        return self._max_depth

    def __iter__(self) -> Iterator[list[str]]:
        """Every SID in lexicographic token-id order (depth-first walk)."""
        stack: list[tuple[int, list[str]]] = [(self.root, [])]
        while stack:
            node, path = stack.pop()
            if node != self.root and self._term[node]:
                yield path
            for e in range(self._off[node + 1] - 1, self._off[node] - 1, -1):
                stack.append((e + 1, [*path, self._vocab[self._tok[e]]]))

    def nbytes(self) -> int:
        """Bytes held by the node arrays (the vocabulary is negligible next to them)."""
        return self.offsets.nbytes + self.edge_tokens.nbytes + self.terminal.nbytes

    # ---- file format --------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write one uncompressed .npz (no pickles): arrays, vocab and a JSON header."""
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "n_sids": self._n_sids,
                  "n_nodes": self.n_nodes, "max_depth": self._max_depth, "meta": self.meta}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as fh:  # write-then-rename: readers never see half a file
            np.savez(fh, header=np.array(json.dumps(header, sort_keys=True, default=str)),
                     offsets=self.offsets, edge_tokens=self.edge_tokens,
                     terminal=np.packbits(self.terminal), vocab=np.array(self._vocab, dtype=str))
        tmp.replace(target)

    @classmethod
    def load(cls, path: str) -> SidTrie:
        """Read a file written by `save`; refuse other formats and newer versions."""
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{path}: not a {FORMAT} v{FORMAT_VERSION} file (header {header})")
            n_nodes = int(header["n_nodes"])
            terminal = np.unpackbits(z["terminal"], count=n_nodes).astype(bool)
            vocab = [str(t) for t in z["vocab"]]
            return cls(z["offsets"], z["edge_tokens"], terminal, vocab, header["n_sids"],
                       header.get("meta"))
