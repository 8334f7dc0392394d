"""Baselines for personalized product search: given user u, query q and u's history, the next item.

Three rankings, scored like every other method here (ranks → `summary.subset_rows`):
- `dense_query`: q embedded by the item encoder, inner product with the unit item vectors
  (faiss `IndexFlatIP`): what text alone retrieves.
- `dense_query_history`: normalize(α·q + (1−α)·mean(unit history item vectors)); α is chosen
  on the validation rows by Recall@10, ties to the larger α (nearer query-only, the simpler
  model), so the test split is never looked at. An empty history leaves q alone.
- `popularity_query`: items whose words hold every query word, by train popularity, then the
  rest of the catalog by popularity so each list has k items: the non-neural floor.
Items already in the history are NOT removed, as SASRec (`baselines.sasrec`), the popularity
baseline and the SID evaluation (`decode.ranking`) keep them. A row with a null query cannot be
scored by a search method; it is skipped by all three alike and counted.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import faiss
import numpy as np

from hourglass.baselines.summary import Row, subset_rows
from hourglass.evaluation.metrics import recall_at
from hourglass.logs import log

Embed = Callable[[list[str]], np.ndarray]
TOP_K = 50  # = max(RECALL_KS): the deepest cut any metric reads
SELECT_K = 10  # validation Recall@10 picks α, as it picks SASRec's checkpoint
ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
METHODS = ("dense_query", "dense_query_history", "popularity_query")
MATCH_FIELDS = ("title", "brand", "categories")
_WORD = re.compile(r"[a-z0-9]+")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of unit L2 norm as float32 (a zero row stays zero rather than NaN)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def encoder_embed(model_dir: str | None = None, **encoder_kwargs: Any) -> Embed:
    """The items' encoder (`TextEncoder`, by default the bundled all-MiniLM-L6-v2) as an `Embed`:
    queries must live in the same space as the item vectors they are compared with."""
    from hourglass.embed.encoder import TextEncoder

    return TextEncoder(model_dir, **encoder_kwargs).encode


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def records(examples: Any) -> list[dict]:
    """Examples as a list of dicts, from a pandas DataFrame or any iterable of mappings."""
    if hasattr(examples, "to_dict"):
        return examples.to_dict("records")
    return [dict(e) for e in examples]


class ItemSpace:
    """The catalog's unit item vectors in an exact inner-product index, and id ↔ row."""

    def __init__(self, item_ids: Sequence[str], matrix: np.ndarray) -> None:
        self.item_ids = tuple(item_ids)
        self.vectors = np.ascontiguousarray(l2_normalize(matrix))
        if self.vectors.ndim != 2 or len(self.item_ids) != self.vectors.shape[0]:
            raise ValueError(f"{len(self.item_ids)} item ids for a matrix of shape {matrix.shape}")
        self.rows = {item: i for i, item in enumerate(self.item_ids)}
        if len(self.rows) != len(self.item_ids):
            raise ValueError("item ids must be unique")
        self.dim = int(self.vectors.shape[1])
        self.index = faiss.IndexFlatIP(self.dim)
        self.index.add(self.vectors)

    def search(self, vectors: np.ndarray, k: int = TOP_K) -> list[list[str]]:
        """Top-k item ids per query vector, best first (exact search, not approximate).

        Equal scores go to the lower catalog row, as SASRec's stable argsort orders them; faiss
        itself orders ties arbitrarily, and items with identical text (identical vectors) are
        common in retail catalogs. So the top-k is re-sorted by (−score, row), and a query
        whose score at the cut ties the next one is scored over the whole catalog instead.
        """
        n = len(self.item_ids)
        k = min(k, n)
        if not len(vectors) or k == 0:
            return [[] for _ in range(len(vectors))]
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        depth = min(k + 1, n)
        scores, idx = self.index.search(queries, depth)
        out = []
        for q, s, i in zip(queries, scores, idx, strict=True):
            if depth > k and s[k] == s[k - 1]:
                rows = np.argsort(-(self.vectors @ q), kind="stable")[:k]
            else:
                rows = i[:k][np.lexsort((i[:k], -s[:k]))]
            out.append([self.item_ids[r] for r in rows])
        return out

    def history_means(self, histories: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """([N, d] mean of each history's unit vectors, [N] bool: any history item embedded).
        History items without an embedding (quarantined at embed time) are left out."""
        out = np.zeros((len(histories), self.vectors.shape[1]), dtype=np.float32)
        has = np.zeros(len(histories), dtype=bool)
        for n, history in enumerate(histories):
            rows = [self.rows[h] for h in history if h in self.rows]
            if rows:
                out[n], has[n] = self.vectors[rows].mean(axis=0), True
        return out, has


def _history(example: Mapping) -> list[str]:
    h = example.get("history")
    return [] if h is None else list(h)


def embed_queries(queries: Sequence[str], embed: Embed, dim: int) -> np.ndarray:
    """[N, dim] unit query vectors; each distinct string is embedded once."""
    distinct = list(dict.fromkeys(queries))
    if not distinct:
        return np.zeros((0, dim), dtype=np.float32)
    vecs = l2_normalize(embed(distinct))
    if vecs.shape != (len(distinct), dim):
        raise ValueError(f"embed gave {vecs.shape} for {len(distinct)} queries; items have {dim}")
    row = {q: i for i, q in enumerate(distinct)}
    return vecs[[row[q] for q in queries]]


def blend(q: np.ndarray, history_mean: np.ndarray, has_history: np.ndarray,
          alpha: float) -> np.ndarray:
    """normalize(α·q + (1−α)·history mean); q alone where the history has no embedded item."""
    mixed = alpha * q + (1.0 - alpha) * history_mean
    return l2_normalize(np.where(has_history[:, None], mixed, q))


def dense_query_rankings(examples: Sequence[Mapping], space: ItemSpace, embed: Embed,
                         k: int = TOP_K) -> list[list[str]]:
    """Query-only dense retrieval: top-k item ids per example (every query must be non-null)."""
    return space.search(embed_queries([e["query"] for e in examples], embed, space.dim), k)


def dense_history_rankings(examples: Sequence[Mapping], space: ItemSpace, embed: Embed,
                           alpha: float, k: int = TOP_K) -> list[list[str]]:
    """Query + history at a fixed α: top-k item ids per example."""
    q = embed_queries([e["query"] for e in examples], embed, space.dim)
    mean, has = space.history_means([_history(e) for e in examples])
    return space.search(blend(q, mean, has, alpha), k)


def select_alpha(valid: Sequence[Mapping], space: ItemSpace, embed: Embed,
                 alphas: Sequence[float] = ALPHAS) -> tuple[float, dict[float, float]]:
    """(α with the best validation Recall@10, {α: Recall@10}); ties go to the larger α."""
    if not alphas or not all(0.0 <= a <= 1.0 for a in alphas):
        raise ValueError(f"alphas must be a non-empty subset of [0, 1], got {alphas}")
    q = embed_queries([e["query"] for e in valid], embed, space.dim)
    mean, has = space.history_means([_history(e) for e in valid])
    targets = [e["target_item_id"] for e in valid]
    if not valid:
        log.warning("search baselines: no validation rows to choose α; α = %s (largest)",
                    max(alphas))
        return float(max(alphas)), {float(a): float("nan") for a in alphas}
    curve = {float(a): recall_at(ranks_of(space.search(blend(q, mean, has, a), SELECT_K),
                                          targets), SELECT_K) for a in alphas}
    best = max(curve, key=lambda a: (curve[a], a))
    return best, curve


def train_counts(item_ids: Iterable[str]) -> dict[str, int]:
    """item_id → occurrences. Pass the train interactions: every interaction of each user but
    the last two (the valid and test targets), so popularity never sees a held-out answer."""
    return dict(Counter(item_ids))


def words(text: str | None) -> set[str]:
    """Lowercase alphanumeric tokens: the vocabulary queries and items are matched in."""
    return set(_WORD.findall(text.lower())) if text else set()


class QueryMatcher:
    """Items holding every query word, by popularity, then the rest by popularity.

    The inverted index (word → item rows) is built once, so a query costs a few set
    intersections; rankings are cached per distinct query string. Popularity ties go to the
    smaller item_id, as `metrics.popularity_order` breaks them.
    """

    def __init__(self, item_ids: Sequence[str], item_texts: Mapping[str, str],
                 counts: Mapping[str, int]) -> None:
        order = sorted(item_ids, key=lambda i: (-counts.get(i, 0), i))
        self.order = tuple(order)  # global popularity; row = position in this order
        self.index: dict[str, set[int]] = {}
        for row, item in enumerate(order):
            for w in words(item_texts.get(item)):
                self.index.setdefault(w, set()).add(row)
        self._cache: dict[tuple[str, int], list[str]] = {}

    def matching_rows(self, query: str) -> list[int]:
        """Rows (popularity order) of the items holding every word of `query`; a query with
        no word matches every item."""
        needed = words(query)
        if not needed:
            return list(range(len(self.order)))
        sets = sorted((self.index.get(w, set()) for w in needed), key=len)
        return sorted(set.intersection(*sets))

    def rank(self, query: str, k: int = TOP_K) -> list[str]:
        key = (query, k)
        if key not in self._cache:
            hits = self.matching_rows(query)[:k]
            taken = set(hits)
            fill = (r for r in range(len(self.order)) if r not in taken)
            rows = hits + list(islice(fill, k - len(hits)))
            self._cache[key] = [self.order[r] for r in rows]
        return self._cache[key]


def popularity_query_rankings(examples: Sequence[Mapping], matcher: QueryMatcher,
                              k: int = TOP_K) -> list[list[str]]:
    """Popularity among items matching the query: top-k item ids per example."""
    return [matcher.rank(e["query"], k) for e in examples]


def ranks_of(rankings: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """1-based rank of each target in its ranked list, 0 when absent (`metric_rows`' format)."""
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings for {len(targets)} targets")
    out = np.zeros(len(targets), dtype=np.int64)
    for n, (ranked, target) in enumerate(zip(rankings, targets, strict=True)):
        for pos, item in enumerate(ranked):
            if item == target:
                out[n] = pos + 1
                break
    return out


@dataclass(frozen=True)
class SearchScores:
    """Test rows (`subset_rows` format) of the three methods, α and its validation curve, the
    rows each split skipped for a null query, and the history items the blend could not use."""

    rows: list[Row]
    alpha: float
    valid_curve: dict[float, float]
    skipped_null_query: dict[str, int]
    users: dict[str, int]
    history_items_without_vector: int


def _with_query(examples: Any, split: str) -> tuple[list[dict], int]:
    rows = records(examples)
    wrong = {r["split"] for r in rows if "split" in r and r["split"] != split}
    if wrong:
        raise ValueError(f"{split} examples hold rows of split {sorted(wrong)}")
    kept = [r for r in rows if not _is_null(r.get("query"))]
    skipped = len(rows) - len(kept)
    if skipped:
        log.warning("search baselines: %d of %d %s rows have a null query and are not scored",
                    skipped, len(rows), split)
    return kept, skipped


def score_search_baselines(valid: Any, test: Any, item_ids: Sequence[str],
                           item_matrix: np.ndarray, item_texts: Mapping[str, str],
                           counts: Mapping[str, int], embed: Embed,
                           segments: Mapping[str, str], k: int = TOP_K,
                           alphas: Sequence[float] = ALPHAS) -> SearchScores:
    """Score the three methods on `test`, with α chosen on `valid`; rows as `subset_rows`.

    `item_texts` maps item_id → the text matched against queries (title, brand, categories:
    `match_text`); `counts` are train popularity (`train_counts`); `segments` item_id →
    head/tail (may be empty: `all` only).
    """
    valid_rows, valid_skipped = _with_query(valid, "valid")
    test_rows, test_skipped = _with_query(test, "test")
    space = ItemSpace(item_ids, item_matrix)
    unembedded = sum(h not in space.rows for r in valid_rows + test_rows for h in _history(r))
    if unembedded:
        log.warning("search baselines: %d history items have no embedding; each history's "
                    "mean leaves them out", unembedded)
    alpha, curve = select_alpha(valid_rows, space, embed, alphas)
    log.info("search baselines: α = %.2f chosen on %d validation rows (Recall@10 %s)", alpha,
             len(valid_rows), {a: round(r, 4) for a, r in curve.items()})
    matcher = QueryMatcher(item_ids, item_texts, counts)
    targets = [r["target_item_id"] for r in test_rows]
    rankings = {
        "dense_query": dense_query_rankings(test_rows, space, embed, k),
        "dense_query_history": dense_history_rankings(test_rows, space, embed, alpha, k),
        "popularity_query": popularity_query_rankings(test_rows, matcher, k),
    }
    rows = [row for method in METHODS
            for row in subset_rows(method, ranks_of(rankings[method], targets), targets,
                                   segments)]
    return SearchScores(rows=rows, alpha=alpha, valid_curve=curve,
                        skipped_null_query={"valid": valid_skipped, "test": test_skipped},
                        users={"valid": len(valid_rows), "test": len(test_rows)},
                        history_items_without_vector=unembedded)


def match_text(item: Mapping[str, object]) -> str:
    """An item row's words for query matching: title, brand and categories (no description,
    whose boilerplate would let almost any query match almost any item)."""
    from hourglass.embed.text import item_text

    return item_text(item, MATCH_FIELDS)
