"""Search baselines against plain references: numpy brute force for faiss, hand-built catalogs
for α selection and query matching, hand-computed ranks for the scored rows."""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pandas as pd
import pytest

from hourglass.baselines.search import (
    METHODS,
    ItemSpace,
    QueryMatcher,
    dense_history_rankings,
    dense_query_rankings,
    match_text,
    popularity_query_rankings,
    ranks_of,
    score_search_baselines,
    select_alpha,
    train_counts,
)
from hourglass.baselines.summary import subset_rows

DIM = 16


def hashed_embed(texts: list[str]) -> np.ndarray:
    """A deterministic fake encoder: each string seeds its own Gaussian vector (not unit norm)."""
    return np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM)
                     for t in texts]).astype(np.float32)


def lookup_embed(table: dict[str, np.ndarray]):
    return lambda texts: np.stack([table[t] for t in texts]).astype(np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def reference_ranking(items: np.ndarray, ids: list[str], query: str, history: list[str],
                      alpha: float | None, k: int) -> list[str]:
    """Brute force in float64: every item's inner product with the (blended) unit query."""
    unit_items = items / np.linalg.norm(items, axis=1, keepdims=True)
    v = unit(hashed_embed([query])[0].astype(np.float64))
    known = [unit_items[ids.index(h)] for h in history if h in ids]
    if alpha is not None and known:
        v = unit(alpha * v + (1 - alpha) * np.mean(known, axis=0))
    order = np.argsort(-(unit_items @ v), kind="stable")[:k]
    return [ids[i] for i in order]


@pytest.fixture
def random_catalog(rng):
    ids = [f"item{i:03d}" for i in range(200)]
    items = rng.standard_normal((200, DIM)).astype(np.float32) * rng.uniform(0.5, 3, (200, 1))
    queries = [f"query {i % 17}" for i in range(40)]  # repeats: each distinct one embedded once
    # no history of exactly two items: at α = 0 its two items tie by construction
    # (u·(u + w)/2 = w·(u + w)/2), and float rounding, not the ranking, would order them
    sizes = rng.choice([0, 1, 3, 4, 5], size=len(queries))
    examples = [{"query": q, "history": list(rng.choice(ids, size=int(n)))}
                for q, n in zip(queries, sizes, strict=True)]
    examples[0]["history"] = ["not-in-catalog"]  # no embedded history item: query alone
    examples[1]["history"] = [ids[3], "not-in-catalog", ids[7], ids[9]]
    return ids, items, examples


def test_faiss_equals_numpy_brute_force(random_catalog):
    ids, items, examples = random_catalog
    space, k = ItemSpace(ids, items), 25
    calls: list[list[str]] = []

    def counting_embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return hashed_embed(texts)

    got = dense_query_rankings(examples, space, counting_embed, k)
    assert calls == [[f"query {i}" for i in range(17)]]
    assert got == [reference_ranking(items, ids, e["query"], e["history"], None, k)
                   for e in examples]
    for alpha in (0.0, 0.3, 0.7, 1.0):
        blended = dense_history_rankings(examples, space, hashed_embed, alpha, k)
        assert blended == [reference_ranking(items, ids, e["query"], e["history"], alpha, k)
                           for e in examples]
    assert dense_history_rankings(examples, space, hashed_embed, 1.0, k) == got


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 30])
def test_equal_scores_go_to_the_lower_row(random_catalog, k):
    """Identical vectors (items with the same text) tie exactly; faiss alone orders them
    arbitrarily, even across the cut. The rule is SASRec's: a stable argsort of −scores."""
    ids, items, _ = random_catalog
    items = items.copy()
    items[[150, 20, 60]] = items[4]
    space = ItemSpace(ids, items)
    embed = lookup_embed({"dup": items[4], "near": items[4] + 0.1 * items[5]})
    for query in ("dup", "near"):
        got = dense_query_rankings([{"query": query}], space, embed, k)[0]
        v = unit(embed([query])[0].astype(np.float64))
        unit_items = items / np.linalg.norm(items, axis=1, keepdims=True)
        expected = [ids[i] for i in np.argsort(-(unit_items @ v), kind="stable")[:k]]
        assert got == expected
    assert got[:min(k, 4)] == ["item004", "item020", "item060", "item150"][:k]


def test_k_beyond_the_catalog_lists_every_item_once(random_catalog):
    ids, items, examples = random_catalog
    got = dense_query_rankings(examples[:3], ItemSpace(ids[:8], items[:8]), hashed_embed, k=50)
    assert all(sorted(r) == sorted(ids[:8]) for r in got)


def alpha_case(query_vec: np.ndarray, history: list[str], items: dict[str, np.ndarray]):
    ids = list(items)
    example = {"query": "q", "history": history, "target_item_id": "target"}
    return [example], ItemSpace(ids, np.stack(list(items.values()))), lookup_embed(
        {"q": query_vec})


E = np.eye(12)
# Ten copies of a vector a hair off the target: below it when the blend is exactly the target
# (cos 1/√1.0001 < 1), above it as soon as the blend leans to e1 (0.1·e1 + 0.9·e0:
# (0.9 + 0.001)/1.00005 > 0.9), so the target drops to rank 11.
NEAR_TARGET = {f"near{j}": E[0] + 0.01 * E[1] for j in range(10)}


def test_alpha_zero_when_only_history_finds_the_target():
    catalog = {"target": E[0], **NEAR_TARGET, "filler": E[2]}
    valid, space, embed = alpha_case(E[1], ["target"], catalog)
    alpha, curve = select_alpha(valid, space, embed)
    assert alpha == 0.0
    assert curve == {0.0: 1.0, **{round(0.1 * i, 1): 0.0 for i in range(1, 11)}}


def test_alpha_one_when_only_the_query_finds_the_target():
    # history = e1: every α < 1 leans to e1, so the near copies pass the target
    catalog = {"target": E[0], **NEAR_TARGET, "hist": E[1]}
    valid, space, embed = alpha_case(E[0], ["hist"], catalog)
    alpha, curve = select_alpha(valid, space, embed)
    assert alpha == 1.0
    assert curve == {**{round(0.1 * i, 1): 0.0 for i in range(10)}, 1.0: 1.0}


def test_alpha_ties_go_to_the_larger_alpha():
    # Distractors normalize(e0 + ej), j = 1..10, query u = normalize(e1 + … + e10), history =
    # target e0. The blend (1−α)·e0 + α·u scores the target (1−α) and each distractor
    # ((1−α) + α/√10)/√2: the target stays first while α ≤ 0.41421/(0.41421 + 0.31623) = 0.567.
    catalog = {"target": E[0], **{f"d{j}": unit(E[0] + E[j]) for j in range(1, 11)}}
    valid, space, embed = alpha_case(unit(E[1:11].sum(axis=0)), ["target"], catalog)
    alpha, curve = select_alpha(valid, space, embed)
    assert curve == {round(0.1 * i, 1): float(i <= 5) for i in range(11)}
    assert alpha == 0.5
    # all equal: the largest α (query-only) wins
    valid, space, embed = alpha_case(E[0], ["target"], catalog)
    assert select_alpha(valid, space, embed) == (1.0, {round(0.1 * i, 1): 1.0 for i in range(11)})


SIX = {  # item_id → (title, brand, categories)
    "A": ("Cordless Phone", "Panasonic", "Office Electronics,Telephones"),
    "B": ("Corded Phone", "AT&T", "Office Electronics,Telephones"),
    "C": ("Cordless Phone Battery", "Panasonic", "Office Electronics,Telephones,Accessories"),
    "D": ("Stapler", "Swingline", "Office Products,Staplers"),
    "E": ("Ink pen", "Bic", "Office Products,Pens"),
    "F": ("Desk phone, cordless", None, "Office Electronics,Telephones"),
}
SIX_COUNTS = train_counts(["D"] * 10 + ["B"] * 5 + ["A", "C"] * 3 + ["E"])  # F: never in train


@pytest.fixture
def six_matcher() -> QueryMatcher:
    texts = {i: match_text({"title": t, "brand": b, "categories": c, "description": "phone"})
             for i, (t, b, c) in SIX.items()}
    return QueryMatcher(list(SIX), texts, SIX_COUNTS)


def test_train_counts_and_match_text():
    assert SIX_COUNTS == {"D": 10, "B": 5, "A": 3, "C": 3, "E": 1}
    assert match_text({"title": "Ink pen", "brand": None, "categories": "Office,Pens",
                       "description": "long text"}) == "Ink pen | Office,Pens"


@pytest.mark.parametrize("query, k, expected", [
    # matches A, C, F by popularity (A, C tie on 3: item_id), then D B E by global popularity
    ("telephones CORDLESS", 6, ["A", "C", "F", "D", "B", "E"]),
    ("telephones cordless", 4, ["A", "C", "F", "D"]),
    ("telephones cordless", 2, ["A", "C"]),
    ("Office Electronics & Telephones", 6, ["B", "A", "C", "F", "D", "E"]),
    ("panasonic", 6, ["A", "C", "D", "B", "E", "F"]),
    ("at&t", 3, ["B", "D", "A"]),  # words "at" and "t": only B's brand
    ("phone zzz", 6, ["D", "B", "A", "C", "E", "F"]),  # nothing matches: global popularity
    ("  &  ", 3, ["D", "B", "A"]),  # no word at all: every item matches
    ("pens", 10, ["E", "D", "B", "A", "C", "F"]),  # k beyond the catalog: all six
])
def test_popularity_among_matching_items(six_matcher, query, k, expected):
    assert six_matcher.rank(query, k) == expected


def test_popularity_rankings_per_example(six_matcher):
    examples = [{"query": "cordless"}, {"query": "staplers"}, {"query": "cordless"}]
    got = popularity_query_rankings(examples, six_matcher, k=3)
    assert got == [["A", "C", "F"], ["D", "B", "A"], ["A", "C", "F"]]


def test_ranks_of():
    ranks = ranks_of([["a", "b", "c"], ["a"], [], ["c", "b"]], ["c", "b", "a", "c"])
    assert ranks.tolist() == [3, 0, 0, 1]
    with pytest.raises(ValueError):
        ranks_of([["a"]], ["a", "b"])


def small_world():
    """Five items in 4-d with hand-checkable scores; popularity i4 > i1 > i3 > i2 > i0."""
    e = np.eye(4)
    ids = ["i0", "i1", "i2", "i3", "i4"]
    matrix = np.stack([e[0], e[1], e[2], e[0] + e[1], e[3]])
    texts = {"i0": "red apple", "i1": "blue berry", "i2": "green apple", "i3": "red blue plum",
             "i4": "green grape"}
    counts = {"i0": 1, "i1": 4, "i2": 2, "i3": 3, "i4": 5}
    embed = lookup_embed({"red": e[0], "blue": e[1], "green": e[2]})
    return ids, matrix, texts, counts, embed


def test_score_search_baselines_rows_equal_hand_computed_ranks(caplog):
    ids, matrix, texts, counts, embed = small_world()
    valid = pd.DataFrame([
        {"user_id": "u1", "split": "valid", "history": ["i1"], "target_item_id": "i0",
         "query": "red"},
        {"user_id": "u4", "split": "valid", "history": ["i2"], "target_item_id": "i1",
         "query": None},
    ])
    test = [
        {"user_id": "u1", "split": "test", "history": ["i1"], "target_item_id": "i3",
         "query": "red"},
        {"user_id": "u2", "split": "test", "history": [], "target_item_id": "i2",
         "query": "green"},
        {"user_id": "u3", "split": "test", "history": ["i0", "gone", "i1"], "target_item_id": "i0",
         "query": "blue"},
        {"user_id": "u4", "split": "test", "history": ["i2"], "target_item_id": "i1",
         "query": float("nan")},
    ]
    segments = {"i3": "head", "i2": "tail"}
    with caplog.at_level(logging.WARNING, logger="hourglass"):
        got = score_search_baselines(valid, test, ids, matrix, texts, counts, embed, segments,
                                     k=2, alphas=(0.0, 0.5))
    # a 5-item catalog puts every target in the validation top 10: a tie, the larger α wins
    assert (got.alpha, got.valid_curve) == (0.5, {0.0: 1.0, 0.5: 1.0})
    assert got.skipped_null_query == {"valid": 1, "test": 1}
    assert got.users == {"valid": 1, "test": 3}
    assert sum("null query" in r.getMessage() for r in caplog.records) == 2
    assert got.history_items_without_vector == 1  # "gone": u3's blend is the mean of i0, i1
    # u1 "red" = e0: i0 1, i3 .71 | blend .5·e0 + .5·e1: i3 first | red matches i3 (3), i0 (1)
    # u2 "green" = e2, no history: i2 first | green matches i4 (5), i2 (2)
    # u3 "blue" = e1: i1, i3 | blend .75·e1 + .25·e0: i1, i3, i0 third | blue: i1, i3
    expected = {"dense_query": [2, 1, 0], "dense_query_history": [1, 1, 0],
                "popularity_query": [1, 2, 0]}
    targets = ["i3", "i2", "i0"]
    assert got.rows == [row for m in METHODS
                        for row in subset_rows(m, expected[m], targets, segments)]


def test_examples_of_the_wrong_split_are_refused():
    ids, matrix, texts, counts, embed = small_world()
    row = {"split": "test", "history": [], "target_item_id": "i0", "query": "red"}
    with pytest.raises(ValueError, match="valid examples hold rows of split"):
        score_search_baselines([row], [row], ids, matrix, texts, counts, embed, {})


def test_no_validation_rows_fall_back_to_query_only():
    ids, matrix, texts, counts, embed = small_world()
    space = ItemSpace(ids, matrix)
    alpha, curve = select_alpha([], space, embed, (0.0, 0.5, 1.0))
    assert alpha == 1.0 and all(np.isnan(v) for v in curve.values())


@pytest.mark.slow
def test_real_encoder_retrieves_the_related_item():
    from hourglass.baselines.search import encoder_embed

    embed = encoder_embed(threads=1)
    texts = ["cordless telephone handset", "swingline stapler", "blue ballpoint pens"]
    space = ItemSpace(["phone", "stapler", "pens"], embed(texts))
    examples = [{"query": q} for q in ("office electronics telephones cordless",
                                       "office products staplers", "writing pens")]
    assert [r[0] for r in dense_query_rankings(examples, space, embed, k=3)] == [
        "phone", "stapler", "pens"]
