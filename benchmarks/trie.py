"""SidTrie build time, memory and lookup rate for 1M and 10M SIDs, against a dict-of-dicts trie.

The SIDs mimic RQ3x12 after `topk(400)`: L=3, M=4096, a Zipf-skewed layer 2 whose top 400 codes
are removed (variable length), and `<d_i>` suffixes on colliding SIDs. Each (implementation,
size) runs in its own process so peak RSS is that build's alone. The baseline — a nested dict
per node with a terminal flag, the usual constrained-decoding trie — is measured at 1M only by
default: at 10M it would need tens of GB.

    .venv/bin/python benchmarks/trie.py [--sizes 1000000,10000000] [--baseline_sizes 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

M, L, K_REMOVED, SEED = 4096, 3, 400, 0
RESULTS = Path(__file__).resolve().parent / "results" / "trie.json"


def synthetic_sids(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (n, 3), keep_b (n,), suffix (n,), -1 = none) of a topk(400)-rewritten table."""
    rng = np.random.default_rng(seed)
    c1 = rng.integers(0, M, n)
    c2 = np.minimum(rng.zipf(1.3, n) - 1, M - 1)  # the hourglass neck: a few huge codes
    c3 = rng.integers(0, M, n)
    keep_b = c2 >= K_REMOVED  # zipf ranks ≈ codes, so codes 0..399 are the top 400
    key = (c1 * (M + 1) + np.where(keep_b, c2, M)) * M + c3
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    start = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    size = np.diff(np.r_[first, n])[group]
    rank = np.arange(n) - first[group]
    suffix = np.full(n, -1, dtype=np.int64)
    suffix[order] = np.where(size > 1, rank, -1)
    return np.stack([c1, c2, c3], axis=1), keep_b, suffix


def iter_sids(codes: np.ndarray, keep_b: np.ndarray, suffix: np.ndarray, rows=None):
    """Token-string SIDs (lists), made lazily from interned token strings."""
    toks = [[f"<{letter}_{c}>" for c in range(M)] for letter in "abcd"]
    a, b, c, d = toks
    for i in (range(len(codes)) if rows is None else rows):
        c1, c2, c3 = codes[i]
        sid = [a[c1], b[c2], c[c3]] if keep_b[i] else [a[c1], c[c3]]
        if suffix[i] >= 0:
            sid.append(d[suffix[i]])
        yield sid


class DictTrie:
    """Baseline: one dict per node, `None` key marks a complete SID."""

    def __init__(self) -> None:
        self.root: dict = {}
        self.n_sids = 0

    def add(self, sid) -> None:
        node = self.root
        for t in sid:
            node = node.setdefault(t, {})
        if None not in node:
            node[None] = True
            self.n_sids += 1

    def allowed_next(self, prefix) -> list[str]:
        node = self.root
        for t in prefix:
            node = node.get(t)
            if node is None:
                return []
        return sorted(k for k in node if k is not None)

    def __contains__(self, sid) -> bool:
        node = self.root
        for t in sid:
            node = node.get(t)
            if node is None:
                return False
        return None in node


def _rate(fn, items) -> float:
    t = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - t)


def measure(impl: str, n: int) -> dict:
    """One build and its lookups, in this process (called in a child process)."""
    from hourglass.rewrite.trie import SidTrie

    codes, keep_b, suffix = synthetic_sids(n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    for _ in iter_sids(codes, keep_b, suffix):
        pass
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    if impl == "sidtrie":
        trie = SidTrie.build(iter_sids(codes, keep_b, suffix))
    else:
        trie = DictTrie()
        for sid in iter_sids(codes, keep_b, suffix):
            trie.add(sid)
    build_s = time.perf_counter() - t
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    rng = np.random.default_rng(1)
    probe_rows = rng.integers(0, n, 100_000)
    probes = list(iter_sids(codes, keep_b, suffix, probe_rows))
    prefixes = [s[: int(k)] for s, k in zip(probes, rng.integers(1, 3, len(probes)), strict=True)]
    roots = [[]] * 2_000
    misses = [[s[0], "<b_9999>"] for s in probes[:20_000]]
    out = {"impl": impl, "n_input": n, "generate_s": gen_s, "build_s": build_s,
           "build_minus_generate_s": build_s - gen_s, "peak_rss_growth_mb": peak_mb,
           "contains_per_s": _rate(trie.__contains__, probes),
           "allowed_next_per_s": _rate(trie.allowed_next, prefixes),
           "allowed_next_root_per_s": _rate(trie.allowed_next, roots),
           "miss_allowed_next_per_s": _rate(trie.allowed_next, misses)}
    if impl == "sidtrie":
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "trie.npz")
            t = time.perf_counter()
            trie.save(path)
            out["save_s"] = time.perf_counter() - t
            out["file_mb"] = os.path.getsize(path) / 2**20
            t = time.perf_counter()
            SidTrie.load(path)
            out["load_s"] = time.perf_counter() - t
        out.update(n_sids=len(trie), n_nodes=trie.n_nodes, array_mb=trie.nbytes() / 2**20)
        out.update(_fast_path(trie, probes))
    else:
        out["n_sids"] = trie.n_sids
    return out


def _fast_path(trie, probes) -> dict:
    """Integer API as beam search uses it: child() per beam, and step() over a beam batch."""
    ids = [[trie.token_id(t) for t in s] for s in probes]
    depth1 = [(trie.root, s[0]) for s in ids]
    t = time.perf_counter()
    nodes = [trie.child(n, k) for n, k in depth1]
    child_rate = len(depth1) / (time.perf_counter() - t)
    nodes_arr, second = np.array(nodes), np.array([s[1] for s in ids])
    t, reps = time.perf_counter(), 20
    for _ in range(reps):
        trie.step(nodes_arr, second)
    step_rate = reps * len(nodes_arr) / (time.perf_counter() - t)
    t = time.perf_counter()
    for n in nodes:
        trie.children(n)
    children_rate = len(nodes) / (time.perf_counter() - t)
    return {"child_per_s": child_rate, "step_batch_per_s": step_rate,
            "children_per_s": children_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--baseline_sizes", default="1000000")
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    runs = [("dict", int(n)) for n in args.baseline_sizes.split(",") if n]
    runs += [("sidtrie", int(n)) for n in args.sizes.split(",") if n]
    results = []
    for impl, n in runs:
        proc = subprocess.run([sys.executable, __file__, "--child", impl, str(n)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done {impl} {n}", file=sys.stderr)
    cols = ["impl", "n_input", "n_sids", "build_s", "build_minus_generate_s",
            "peak_rss_growth_mb", "array_mb", "file_mb", "load_s", "contains_per_s",
            "allowed_next_per_s", "allowed_next_root_per_s", "miss_allowed_next_per_s",
            "child_per_s", "step_batch_per_s"]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "-"))
                         for c in cols))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"M": M, "L": L, "K_removed": K_REMOVED, "seed": SEED,
                                   "cpu_count": os.cpu_count(), "results": results}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
