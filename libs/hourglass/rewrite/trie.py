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
_APPEND_ROWS = 1 << 20  # sorted SIDs gathered per append to the trie


class _Encoder:
    """Accumulates SIDs as int32 token ids per chunk, so the builder never holds Python lists.

    Ids are given in order of first appearance; `vocab_remap` maps them to the sorted
    vocabulary's ids once every token has been seen.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.flat: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []

    def add_chunk(self, chunk: list[Sequence[str]]) -> None:
        get = self.ids.setdefault
        flat = [get(t, len(self.ids)) for sid in chunk for t in sid]
        self.flat.append(np.asarray(flat, dtype=np.int32))
        self.lengths.append(np.fromiter((len(s) for s in chunk), dtype=np.int32, count=len(chunk)))

    def arrow_ids(self, chunk) -> tuple[np.ndarray, np.ndarray]:
        """(flat token ids, lengths) of a pyarrow list<string> array, without a Python object
        per SID or token: Arrow dictionary-encodes the tokens and only the dictionary is mapped."""
        import pyarrow.compute as pc

        if chunk.null_count:
            raise ValueError("a SID must not be null")
        encoded = pc.dictionary_encode(chunk.flatten())
        get = self.ids.setdefault
        to_global = np.array([get(t, len(self.ids)) for t in encoded.dictionary.to_pylist()],
                             dtype=np.int32)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False).astype(np.int32)
        return to_global[indices], lengths

    def vocab_remap(self) -> tuple[list[str], np.ndarray]:
        """The sorted vocabulary and, per id of appearance, its id in that vocabulary."""
        vocab = sorted(self.ids)
        remap = np.empty(len(vocab), dtype=np.int32)
        for new, tok in enumerate(vocab):
            remap[self.ids[tok]] = new
        return vocab, remap

    def matrix(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Padded (n, depth) matrix of sorted-vocab ids (-1 = no token), lengths, vocab."""
        vocab, remap = self.vocab_remap()
        # one array each, the chunks dropped: they would double the tokens' memory
        self.lengths = [np.concatenate(self.lengths) if self.lengths else np.zeros(0, np.int32)]
        self.flat = [np.concatenate(self.flat) if self.flat else np.zeros(0, np.int32)]
        mat = _padded(self.flat[0], self.lengths[0], remap)
        return mat, self.lengths[0], vocab


def _padded(flat: np.ndarray, lengths: np.ndarray, remap: np.ndarray | None = None
            ) -> np.ndarray:
    """(n, max length) int32 matrix of the SIDs' token ids (through `remap` if given), -1 after
    each SID's end."""
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
        mat[alive, d] = flat[at] if remap is None else remap[flat[at]]
        del at
    return mat


class _Blocks:
    """A 1-d array grown in fixed blocks: no copy when it grows, and `drain` drops each block
    once its values are copied out (an int32 block, 64 MB, is above glibc's largest mmap
    threshold, so its memory goes back to the OS when dropped)."""

    def __init__(self, dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.blocks: list[np.ndarray] = []
        self.n = 0

    def append(self, values: np.ndarray | None = None, zeros: int = 0) -> None:
        """Append `values`, or `zeros` zeros."""
        k = zeros if values is None else len(values)
        done = 0
        while done < k:
            at = self.n % _BLOCK
            if at == 0:
                self.blocks.append(np.zeros(_BLOCK, self.dtype))
            take = min(k - done, _BLOCK - at)
            if values is not None:
                self.blocks[-1][at:at + take] = values[done:done + take]
            self.n += take
            done += take

    def add(self, start: int, values: np.ndarray) -> None:
        """self[start : start + len(values)] += values."""
        done = 0
        while done < len(values):
            b, at = divmod(start + done, _BLOCK)
            take = min(len(values) - done, _BLOCK - at)
            self.blocks[b][at:at + take] += values[done:done + take]
            done += take

    def drain(self) -> Iterator[np.ndarray]:
        """The values block by block, in order; each block is dropped once the next is asked."""
        self.blocks.reverse()
        left, self.n = self.n, 0
        while self.blocks:
            block = self.blocks.pop()
            take = min(left, _BLOCK)
            left -= take
            yield block[:take]
            del block


class _CsrStream:
    """The CSR arrays of SIDs that arrive in order, chunk by chunk.

    Rows must come sorted lexicographically by token (a SID before its extensions, duplicates
    adjacent), as a Spark sort or `np.lexsort` delivers them. Node ids are breadth-first, so
    they are final only once every depth's count is known: until `finish`, each depth keeps
    per node its token, whether it ends a SID and its number of children — 9 bytes per node,
    the finished trie's own size, in blocks that `finish` frees as it copies them. Rows equal
    to the row before add nothing (kept collisions).
    """

    def __init__(self) -> None:
        self._tokens: list[_Blocks] = []  # per depth, per node: the token on its edge
        self._terminal: list[_Blocks] = []  # ... whether the path to it is a whole SID
        self._children: list[_Blocks] = []  # ... how many children it has
        self._root_children = 0
        self._last: np.ndarray | None = None  # the previous chunk's last row, padded
        self.n_sids = 0

    def add(self, mat: np.ndarray, lengths: np.ndarray) -> None:
        """Append sorted rows: `mat` (k, width) token ids padded with -1, `lengths` (k,)."""
        k = len(lengths)
        if k == 0:
            return
        if np.any(lengths < 1):
            raise ValueError("a SID must have at least one token")
        while len(self._tokens) < mat.shape[1]:
            self._tokens.append(_Blocks(np.int32))
            self._terminal.append(_Blocks(bool))
            self._children.append(_Blocks(np.int32))
        depth = len(self._tokens)
        mat = _widen(mat, depth)
        changed = np.zeros(k, dtype=bool)  # the row's prefix so far differs from the row before
        if self._last is None:
            changed[0] = True
        last = None if self._last is None else _widen(self._last[None, :], depth)[0]
        up_rank = np.zeros(k, dtype=np.int64)  # rank of each row's node one depth up (root 0)
        ended_new = 0  # rows whose whole SID is a new node
        for d in range(depth):
            col = mat[:, d]
            changed[1:] |= col[1:] != col[:-1]
            if last is not None:
                changed[0] |= col[0] != last[d]
            new = (lengths > d) & changed
            count = self._tokens[d].n
            if new.any():
                parents = up_rank[new]  # non-decreasing: rows are in order
                if d == 0:
                    self._root_children += len(parents)
                else:
                    self._children[d - 1].add(int(parents[0]), np.bincount(parents - parents[0]))
                ends = lengths[new] == d + 1
                self._tokens[d].append(col[new])
                self._terminal[d].append(ends)
                self._children[d].append(zeros=len(parents))
                ended_new += int(ends.sum())
            # the rank of the latest depth-d node at or before each row
            up_rank = np.cumsum(new, dtype=np.int64)
            up_rank += count - 1
        # in sorted input a row is either its predecessor again or ends at a new node; a row
        # that is neither came out of order (the trie would lose SIDs or repeat edges)
        if ended_new != int(changed.sum()):
            raise ValueError("SIDs are not in lexicographic order: the trie needs sorted input")
        self.n_sids += ended_new
        self._last = mat[-1].copy()

    def finish(self, remap: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(offsets, edge_tokens, terminal, n_sids), tokens mapped through `remap` if given.

        Checks what the order promised: each node's edge tokens strictly ascending.
        """
        n_edges = sum(t.n for t in self._tokens)
        n_nodes = n_edges + 1
        edge_tokens = np.empty(n_edges, dtype=np.int32)
        terminal = np.zeros(n_nodes, dtype=bool)
        offsets = np.empty(n_nodes + 1, dtype=np.int32 if n_edges < 2**31 - 1 else np.int64)
        offsets[:2] = 0, self._root_children
        tok_at, term_at, off_at = 0, 1, 2
        for tokens, ends, children in zip(self._tokens, self._terminal, self._children,
                                          strict=True):
            for block in tokens.drain():
                edge_tokens[tok_at:tok_at + len(block)] = block if remap is None else remap[block]
                tok_at += len(block)
            for block in ends.drain():
                terminal[term_at:term_at + len(block)] = block
                term_at += len(block)
            for block in children.drain():
                out = offsets[off_at:off_at + len(block)]
                np.cumsum(block, out=out)
                out += offsets[off_at - 1]
                off_at += len(block)
        _check_ascending(edge_tokens, offsets)
        return offsets, edge_tokens, terminal, self.n_sids


def _widen(mat: np.ndarray, width: int) -> np.ndarray:
    if mat.shape[1] >= width:
        return mat
    pad = np.full((mat.shape[0], width - mat.shape[1]), -1, dtype=mat.dtype)
    return np.concatenate([mat, pad], axis=1)


_BLOCK = 1 << 24  # items per storage block (64 MB of int32) and per checked slice
_ROWS = 1 << 20  # sorted rows per step of an in-memory build


def _check_ascending(edge_tokens: np.ndarray, offsets: np.ndarray) -> None:
    """Raise unless the edge tokens ascend strictly within every node's edges."""
    for a in range(1, len(edge_tokens), _BLOCK):
        b = min(a + _BLOCK, len(edge_tokens))
        rising = edge_tokens[a:b] > edge_tokens[a - 1:b - 1]
        starts = offsets[np.searchsorted(offsets, a):np.searchsorted(offsets, b)]
        rising[starts - a] = True  # a node's first edge follows another node's last
        if not rising.all():
            raise ValueError("SIDs are not in lexicographic order: a node repeats or misorders "
                             "its edges")


def _csr_from_matrix(mat: np.ndarray, lengths: np.ndarray):
    """Padded rows in any order → (offsets, edge_tokens, terminal, n_sids): sorted by index
    (-1 padding sorts first, so a SID precedes its own extensions) and streamed in chunks."""
    stream = _CsrStream()
    if len(lengths) == 0:
        return stream.finish()
    order = np.lexsort(mat.T[::-1])
    for a in range(0, len(order), _ROWS):
        rows = order[a:a + _ROWS]
        stream.add(mat[rows], lengths[rows])
    del order
    return stream.finish()


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
        """Add a pyarrow list<string> array (or chunked array) of SIDs."""
        self._flush()  # keep the order of ids stable with any SIDs added one by one
        for chunk in _chunks(sids):
            flat, lengths = self._enc.arrow_ids(chunk)
            self._enc.flat.append(flat)
            self._enc.lengths.append(lengths)
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


class SortedSidTrieBuilder:
    """Builder for SIDs that arrive already sorted by token string (a Spark sort on the
    executors), so nothing is held or sorted per SID: the driver keeps the growing trie only.

    Token ids are given in order of first appearance and mapped to the sorted vocabulary at
    `build`; string order of tokens is that vocabulary's order, so the edges stay ascending.
    Out-of-order input raises instead of building a wrong trie.
    """

    def __init__(self) -> None:
        self._enc = _Encoder()
        self._stream = _CsrStream()
        self._pending: list = []  # Arrow arrays not yet appended: few, large numpy steps
        self._pending_rows = 0

    def add_arrow(self, sids) -> SortedSidTrieBuilder:
        """Append a pyarrow list<string> array (or chunked array) of SIDs, sorted; they are
        gathered and appended `_APPEND_ROWS` at a time."""
        for chunk in _chunks(sids):
            self._pending.append(chunk)
            self._pending_rows += len(chunk)
        if self._pending_rows >= _APPEND_ROWS:
            self._flush()
        return self

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            flat, lengths = self._enc.arrow_ids(pa.chunked_array(self._pending).combine_chunks())
            self._pending, self._pending_rows = [], 0
            self._stream.add(_padded(flat, lengths), lengths)

    def build(self, meta: dict[str, Any] | None = None) -> SidTrie:
        self._flush()
        vocab, remap = self._enc.vocab_remap()
        offsets, edge_tokens, terminal, n = self._stream.finish(remap)
        self._stream = _CsrStream()
        return SidTrie(offsets, edge_tokens, terminal, vocab, n, meta)


def _chunks(sids) -> list:
    import pyarrow as pa

    return sids.chunks if isinstance(sids, pa.ChunkedArray) else [sids]


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
