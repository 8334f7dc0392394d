"""Derived search queries: hand-computed paths, multi-path choices, `derive` and the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

from hourglass.search import MAX_QUERY_CHARS
from hourglass.search.queries import (
    category_paths,
    choose_query,
    derive,
    item_queries,
    main,
    query_of_path,
    stop_words,
)


@pytest.mark.parametrize(("path", "query"), [
    ("Office Electronics, Telephones & Accessories, Cordless Telephones",
     "office electronics telephones accessories cordless"),
    # stop words (for, the) and a repeated word (paper, office) go; first occurrences stay
    ("Office & School Supplies, Paper, Paper & Printable Media, Sticky Notes for the Office",
     "office school supplies paper printable media sticky notes"),
    # Scientific's commas inside terms change nothing; tape and tapes are different words
    ("Industrial & Scientific,Tapes, Adhesives & Sealants,Adhesive Tapes,Duct Tape",
     "industrial scientific tapes adhesives sealants adhesive duct tape"),
    # entities decoded, accents folded, a possessive dropped, hyphens and slashes split
    ("Children's Music, Café &amp; Bar-Stools, In/Out Trays",
     "children music cafe bar stools trays"),
    ("Don\u2019t Panic, 3D Printing", "dont panic 3d printing"),
])
def test_query_of_path_by_hand(path, query):
    assert query_of_path(path) == query


def test_stop_words_are_scikit_learns():
    stop = stop_words()
    assert len(stop) == 318 and {"the", "for", "and", "of"} <= stop
    assert "and" not in query_of_path("Pens and Pencils").split()


@pytest.mark.parametrize("categories", ["", "   ", None, float("nan"), "&", "[]", " | "])
def test_no_category_words_no_query(categories):
    assert item_queries(categories) == []


def test_paths_of_every_spelling():
    two = ["office products paper", "office products pens"]
    assert item_queries("Office Products, Paper | Office Products, Pens") == two
    assert item_queries('[["Office Products", "Paper"], ["Office Products", "Pens"]]') == two
    # the raw 2014 Amazon metadata is Python literal text, not JSON
    assert item_queries("[['Office Products', 'Paper'], ['Office Products', 'Pens']]") == two
    assert item_queries([["Office Products", "Paper"], ["Office Products", "Pens"]]) == two
    # a flat list is one path's terms
    assert category_paths('["Office Products", "Paper"]') == ["Office Products, Paper"]
    # two paths with the same query are one query; an unparseable bracket is a plain path
    assert item_queries("Paper, Office|Office, Paper, the") == ["paper office", "office paper"]
    assert item_queries("Paper|Paper") == ["paper"]
    assert item_queries("[Misc] Paper") == ["misc paper"]


def test_overlong_path_is_no_query():
    long_path = " ".join(f"word{i}" for i in range(MAX_QUERY_CHARS // 4))
    assert len(query_of_path(long_path)) > MAX_QUERY_CHARS
    assert item_queries(f"{long_path}|Pens") == ["pens"]


def test_multi_path_choice_is_stable_and_spreads():
    queries = ["a paper", "b pens", "c ink"]
    picks = [choose_query(queries, f"u{n}", "i1", n % 7) for n in range(300)]
    assert picks == [choose_query(queries, f"u{n}", "i1", n % 7) for n in range(300)]
    assert min(Counter(picks).values()) >= 60  # 100 each expected
    assert choose_query(queries, "u1", "i1", 3) == choose_query(queries, "u1", "i1", "3")
    assert choose_query(["only"], "u", "i", 0) == "only"
    assert choose_query([], "u", "i", 0) is None


def test_choice_does_not_depend_on_the_hash_seed():
    code = ("from hourglass.search.queries import choose_query as c;"
            "print([c(['a', 'b', 'c'], f'u{n}', 'i', n) for n in range(50)])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(outs) == 1


ITEMS = pd.DataFrame({
    "item_id": ["i0", "i1", "i2", "i3", "i4"],
    "categories": ["Office Products, Pens", "Office Products, Pens|Office Products, Paper", "",
                   "Office Products, Paper", "Office Products, Pens, Gel"],
})
INTERACTIONS = pd.DataFrame({
    "user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u4"],
    "item_id": ["i0", "i1", "i2", "i9", "i3", "i1", "i4"],
    "position": [0, 1, 0, 1, 0, 1, 0],
}, index=[10, 3, 7, 1, 0, 5, 2])


def test_derive_keeps_rows_and_order_and_counts():
    out, stats = derive(ITEMS, INTERACTIONS, "tiny")
    pd.testing.assert_frame_equal(out[list(INTERACTIONS.columns)], INTERACTIONS)
    assert list(out.columns) == ["user_id", "item_id", "position", "query"]
    pens, paper = "office products pens", "office products paper"
    q = out["query"].tolist()
    assert q[0] == pens and q[4] == paper and q[6] == "office products pens gel"
    assert q[2] is None and q[3] is None  # no category words; an unknown item
    assert q[1] in (pens, paper) and q[5] in (pens, paper)
    assert stats.to_dict() == {
        "dataset": "tiny", "interactions": 7, "with_query": 5, "distinct_queries": 3,
        "items": 5, "items_without_query": 1, "multi_path_items": 1,
        # pens: i0, i1; paper: i1, i3; pens gel: i4
        "items_per_query": {"min": 1, "median": 2.0, "mean": 5 / 3, "max": 2}}
    assert "| items on several paths | 1 |" in stats.to_markdown()
    assert derive(ITEMS, INTERACTIONS)[0].equals(derive(ITEMS, INTERACTIONS)[0])


def test_derive_needs_a_time_column():
    with pytest.raises(ValueError, match="one of"):
        derive(ITEMS, INTERACTIONS.drop(columns="position"))


def test_command_end_to_end(tmp_path, capsys):
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    items_text = "".join(json.dumps({"item_id": i, "title": "t", "categories": c}) + "\n"
                         for i, c in zip(ITEMS.item_id, ITEMS.categories, strict=True))
    (folder / "items.jsonl").write_text(items_text)
    INTERACTIONS.to_csv(folder / "interactions.csv", index=False)
    out = tmp_path / "out"
    main(["--dataset", "tiny", "--data-root", str(tmp_path / "data"), "--out", str(out)])

    lines = (out / "interactions.csv").read_text().splitlines()
    assert lines[0] == "user_id,item_id,position,query"
    assert lines[1] == "u1,i0,0,office products pens"
    assert lines[3] == "u2,i2,0," and lines[4] == "u2,i9,1,"
    derived = pd.read_csv(out / "interactions.csv", dtype=str, keep_default_na=False)
    assert derived[["user_id", "item_id", "position"]].values.tolist() == \
        INTERACTIONS.astype(str).values.tolist()
    assert (out / "items.jsonl").read_text() == items_text
    stats = json.loads((out / "query_stats.json").read_text())
    assert (stats["dataset"], stats["interactions"], stats["with_query"]) == ("tiny", 7, 5)
    assert "| with a query | 5 (71.4%) |" in capsys.readouterr().out

    main(["--items", str(folder / "items.jsonl"), "--interactions",
          str(folder / "interactions.csv"), "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "interactions.csv").read_text() == \
        (out / "interactions.csv").read_text()
    with pytest.raises(SystemExit):
        main(["--dataset", "nowhere", "--data-root", str(tmp_path), "--out", str(out)])
