"""Derived search queries: public Amazon data logs no queries, so each purchase gets one made from
the purchased item's category path, the standard construction of Ai et al. (SIGIR 2017,
"Learning a Hierarchical Embedding Model for Personalized Product Search").

A path's query is its words in order, lowercased, without stop words and without repeats:

- words are runs of `[a-z0-9]` after HTML entities are decoded (`&amp;` → `&`), accents are
  folded (`é` → `e`) and apostrophes are dropped (a possessive `'s` with them: `Children's` →
  `children`, `Don't` → `dont`); everything else (`&`, `-`, `/`, `+`, `,` …) separates words, so
  `&` never becomes a word (nor `and`, a stop word anyway);
- stop words are scikit-learn's `ENGLISH_STOP_WORDS` (318 words): a maintained list, read at
  first use, so importing this module needs no scikit-learn (the `train` extra brings it);
- how a path separates its terms does not matter, since the path is split into words: the
  bundled Office data writes `Office Electronics, Telephones & Accessories`, Scientific writes
  `Industrial & Scientific,Tapes, Adhesives & Sealants,…` (commas inside its terms).

An item may sit on several paths (`|`-separated, or the raw metadata's list of lists as JSON or
Python literal text) and then has one query per distinct path query; a purchase of it gets one
of them, chosen by a stable hash (BLAKE2b, not Python's salted `hash`) of its user_id, item_id
and time value as text, so reruns agree and one user's purchases spread over the paths. An item
with no category words (or only an overlong path, see `item_queries`) has no query: its
purchases get a null query (the search task quarantines such targets).

    hourglass-derive-queries --dataset amazon-office --out derived/amazon-office
    python -m hourglass.search.queries --items I.jsonl --interactions I.csv --out DIR
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import hashlib
import html
import json
import re
import shutil
import statistics
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from hourglass import __version__
from hourglass.search import MAX_QUERY_CHARS

TIME_COLUMNS = ("ts", "position")
_APOSTROPHE = re.compile(r"['’](?:s\b)?")
_WORD = re.compile(r"[a-z0-9]+")


@functools.cache
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop-word list."""
    try:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    except ImportError as exc:  # pragma: no cover - the dev and train environments have it
        raise ImportError("derived queries use scikit-learn's stop words: install hourglass[train] "
                          "or scikit-learn") from exc
    return frozenset(ENGLISH_STOP_WORDS)


def words(text: str) -> list[str]:
    """The lowercase alphanumeric words of `text` (see the module docstring)."""
    text = unicodedata.normalize("NFKD", html.unescape(text).lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _WORD.findall(_APOSTROPHE.sub("", text))


def query_of_path(path: str) -> str:
    """One category path's query: its words without stop words and repeats, in order ("" when
    nothing is left)."""
    stop = stop_words()
    return " ".join(dict.fromkeys(w for w in words(path) if w not in stop))


def category_paths(categories: Any) -> list[str]:
    """The paths of an item's `categories`: `|`-separated paths, or a list of lists (several
    paths) or list of strings (one path's terms), also as JSON or Python literal text."""
    if isinstance(categories, str) and categories.lstrip().startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                categories = parse(categories)
                break
            except (ValueError, SyntaxError, RecursionError):
                continue
    if isinstance(categories, (list, tuple)):
        if all(isinstance(c, (list, tuple)) for c in categories):
            return [", ".join(map(str, path)) for path in categories]
        return [", ".join(map(str, categories))]
    if not isinstance(categories, str):
        return []  # None, NaN
    return [p.strip() for p in categories.split("|") if p.strip()]


def item_queries(categories: Any) -> list[str]:
    """One query per category path of an item, repeats and empty queries left out, and those
    longer than `MAX_QUERY_CHARS`, which ingest would quarantine with the whole interaction: a
    path that long is product copy, not a category (one item of the bundled Scientific data)."""
    queries = map(query_of_path, category_paths(categories))
    return list(dict.fromkeys(q for q in queries if 0 < len(q) <= MAX_QUERY_CHARS))


def choose_query(queries: list[str], user_id: Any, item_id: Any, ts: Any) -> str | None:
    """The query of one purchase: the item's only one, or one picked by a stable hash."""
    if len(queries) <= 1:
        return queries[0] if queries else None
    key = "\x1f".join(map(str, (user_id, item_id, ts))).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return queries[int.from_bytes(digest, "big") % len(queries)]


@dataclasses.dataclass(frozen=True)
class QueryStats:
    """What the derivation gave one dataset; `items_per_query` is over the distinct queries of
    the interactions: how many items have that query among their derived ones."""

    dataset: str
    interactions: int
    with_query: int
    distinct_queries: int
    items: int
    items_without_query: int
    multi_path_items: int
    items_per_query: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        return markdown_table([self])


def markdown_table(stats: list[QueryStats]) -> str:
    """One column per dataset."""
    def ipq(s: QueryStats) -> str:
        d = s.items_per_query
        return f"{d['min']:g} / {d['median']:g} / {d['mean']:.2f} / {d['max']:g}"

    def share(s: QueryStats) -> str:
        return f"{s.with_query:,} ({s.with_query / max(s.interactions, 1):.1%})"

    rows = [("interactions", lambda s: f"{s.interactions:,}"),
            ("with a query", share),
            ("distinct queries", lambda s: f"{s.distinct_queries:,}"),
            ("items", lambda s: f"{s.items:,}"),
            ("items without a query", lambda s: f"{s.items_without_query:,}"),
            ("items on several paths", lambda s: f"{s.multi_path_items:,}"),
            ("items per query (min / median / mean / max)", ipq)]
    lines = ["| | " + " | ".join(s.dataset for s in stats) + " |",
             "|---|" + "---|" * len(stats)]
    lines += [f"| {name} | " + " | ".join(cell(s) for s in stats) + " |" for name, cell in rows]
    return "\n".join(lines)


def _time_column(interactions: pd.DataFrame) -> str:
    found = next((c for c in TIME_COLUMNS if c in interactions.columns), None)
    if found is None:
        raise ValueError(f"interactions need user_id, item_id and one of {TIME_COLUMNS}")
    return found


def derive(
    items: pd.DataFrame, interactions: pd.DataFrame, dataset: str = "",
) -> tuple[pd.DataFrame, QueryStats]:
    """`interactions` (user_id, item_id, and `ts` or `position`) with a `query` column added, in
    the same order, and the stats; `items` needs item_id and categories (the first row of an
    item_id counts). A purchase of an unknown item gets a null query, like one of an item
    without category words."""
    items = items.drop_duplicates("item_id")
    per_item = {str(i): item_queries(c) for i, c in zip(items["item_id"], items["categories"],
                                                       strict=True)}
    ts = _time_column(interactions)
    chosen = [choose_query(per_item.get(str(i), []), u, i, t) for u, i, t in
              zip(interactions["user_id"], interactions["item_id"], interactions[ts], strict=True)]
    out = interactions.assign(query=pd.Series(chosen, index=interactions.index, dtype=object))

    matches = Counter(q for qs in per_item.values() for q in qs)
    used = sorted({q for q in chosen if q is not None})
    counts = [matches[q] for q in used] or [0]
    stats = QueryStats(
        dataset=dataset,
        interactions=len(out),
        with_query=len(chosen) - chosen.count(None),
        distinct_queries=len(used),
        items=len(per_item),
        items_without_query=sum(not qs for qs in per_item.values()),
        multi_path_items=sum(len(qs) > 1 for qs in per_item.values()),
        items_per_query={"min": min(counts), "median": float(statistics.median(counts)),
                         "mean": statistics.fmean(counts), "max": max(counts)},
    )
    return out, stats


def data_root(explicit: str | None) -> Path:
    """`--data-root`, else `./data` (the bundled samples, run from the repository root, as
    `hourglass-paper-tables` reads them): an installed wheel has no checkout around it."""
    return Path(explicit) if explicit else Path("data")


def write_derived(items_path: Path, interactions_path: Path, out: Path,
                  dataset: str) -> QueryStats:
    """`out/interactions.csv` (the input's columns and order, plus query), `out/items.jsonl`
    (a copy) and `out/query_stats.json`."""
    items = pd.read_json(items_path, lines=True, dtype=False)
    # as text, so every input value is written back as it was read
    interactions = pd.read_csv(interactions_path, dtype=str, keep_default_na=False)
    derived, stats = derive(items, interactions, dataset)
    out.mkdir(parents=True, exist_ok=True)
    derived.to_csv(out / "interactions.csv", index=False)
    shutil.copyfile(items_path, out / "items.jsonl")
    (out / "query_stats.json").write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    return stats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="hourglass-derive-queries",
                                description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--dataset", help="a bundled folder under --data-root, e.g. amazon-office")
    p.add_argument("--data-root", help="where --dataset lives (default: ./data)")
    p.add_argument("--items", help="items.jsonl (item_id, categories, …)")
    p.add_argument("--interactions", help="interactions.csv (user_id, item_id, ts or position)")
    p.add_argument("--out", required=True, help="folder for the derived dataset")
    args = p.parse_args(argv)
    if args.dataset:
        folder = data_root(args.data_root) / args.dataset
        items, inter = folder / "items.jsonl", folder / "interactions.csv"
    elif args.items and args.interactions:
        items, inter = Path(args.items), Path(args.interactions)
    else:
        p.error("give --dataset, or --items and --interactions")
    for f in (items, inter):
        if not f.is_file():
            p.error(f"no {f}: run from the repository root or set --data-root")
    stats = write_derived(items, inter, Path(args.out), args.dataset or inter.parent.name)
    sys.stdout.write(stats.to_markdown() + "\n")


if __name__ == "__main__":
    main()
