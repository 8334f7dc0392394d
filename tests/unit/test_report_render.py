"""The report renders from in-memory tables: files, inlined figures, the paper-shaped tables."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hourglass.report.data import ReportData
from hourglass.report.flow import _nodes
from hourglass.report.html import fmt, natural_key
from hourglass.report.render import render_report
from hourglass.stats.reference import reference_tables, sids_from_codes, sids_from_tokens
from hourglass.stats.schema import OTHER_TOKEN
from hourglass.stats.summary import RunInfo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data() -> ReportData:
    rng = np.random.default_rng(7)
    n, M = 3000, 64
    codes = np.stack([rng.integers(0, M, n), np.minimum(rng.zipf(1.5, n) - 1, M - 1),
                      rng.integers(0, M, n)], axis=1)
    norms = np.sort(rng.gamma(2.0, 0.3, (n, 3)), axis=1)[:, ::-1].astype(np.float32)
    ids = [f"i{i}" for i in range(n)]
    a = reference_tables(ids, sids_from_codes(codes), norms,
                         RunInfo("orig", "fixed", 3, M, "config", codebook_id="cb"), flow_top=8)
    dropped = [[f"<a_{c[0]}>", f"<c_{c[2]}>"] for c in codes]
    b = reference_tables(ids, sids_from_tokens(dropped), None,
                         RunInfo("drop_layer_2", "rewritten", 3, M, "config",
                                 strategy="drop_layer_2"), flow_top=8)
    ev = [("e", s, sub, m, k, v) for s, base in (("topk_200", 0.3), ("none", 0.2),
                                                 ("popularity", 0.05), ("topk_20", 0.25),
                                                 ("exchange_1_2+given_1", 0.6))
          for sub in ("all", "head", "tail") for m, k, v in
          [("users", 0, 100.0), *(("recall", k, base + k / 100) for k in (1, 3, 5, 10, 30, 50)),
           ("ndcg", 5, base / 2), ("ndcg", 10, base / 2 + 0.01)]]
    ev += [("e", "none", "all", "invalid_ratio", k, k / 200) for k in (1, 10, 50)]
    rs = pd.DataFrame([("none", "capacity_definition", 262144.0),
                       ("drop_layer_2", "capacity_definition", 4096.0)],
                      columns=["strategy", "metric", "value"])

    def both(key):
        return pd.concat([a[key], b[key]], ignore_index=True)

    return ReportData(summary=both("sid_summary"), layer_stats=both("sid_layer_stats"),
                      flow=both("sid_flow"), rewrite_summary=rs,
                      eval_results=pd.DataFrame(ev, columns=["run_id", "strategy", "subset",
                                                             "metric", "k", "value"]))


@pytest.fixture(scope="module")
def rendered(data, tmp_path_factory):
    return render_report(data, tmp_path_factory.mktemp("report"), title="Test <report>",
                         note="A tiny budget: <b>noise</b> decides the order.")


def test_report_files_and_sections(rendered):
    out = rendered
    page = out.path.read_text()
    assert out.path.name == "index.html" and len(out.figures) >= 9
    for png in out.figures:
        assert png.parent == out.path.parent and png.read_bytes()[:8] == PNG_MAGIC
        assert f'href="{png.name}"' in page
    # self-contained: every figure inlined, nothing fetched from elsewhere
    assert page.count("data:image/png;base64,") == len(out.figures)
    assert not re.search(r"(src|href)=\"https?://", page)
    assert "Test &lt;report&gt;" in page  # escaped
    assert "<p class='lead'>A tiny budget: &lt;b&gt;noise&lt;/b&gt; decides" in page
    for anchor in ("overview", "compare", "run-orig", "run-drop_layer_2", "rewrite",
                   "evaluation"):
        assert f"id='{anchor}'" in page
    # the original run comes first, and its middle layer collapsed; the rewrite has no layer 2
    assert page.index("run-orig") < page.index("run-drop_layer_2")
    assert '<span class="verdict-yes">yes</span>' in page


def test_table2_rows_and_best_values(rendered):
    page = rendered.path.read_text()
    table2 = page.split("paper Table 2")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td>", table2)
    assert rows == ["popularity", "none",
                    "exchange_1_2 + given prefix 1 (diagnostic: sees 1 target token)",
                    "topk_20", "topk_200"]
    # topk_200's Recall@1 is the column's best: the diagnostic saw part of the answer
    assert "<td><b>0.3100</b></td>" in table2 and "<b>0.6100</b>" not in table2
    assert "Recall@50" in table2 and "NDCG@10" in table2
    table1 = page.split("paper Table 1")[1].split("</table>")[0]
    assert table1.count("head token") == 5 and table1.count("tail token") == 5
    assert "invalid@50" in page and "0.2500" in page  # none's invalid ratio at k=50


def test_flow_nodes_aggregate_the_tail(data):
    s = data.summary[data.summary.run_id == "orig"]
    ls = data.layer_stats[data.layer_stats.run_id == "orig"]
    nodes = _nodes(s, ls)
    for layer, rows in nodes.items():
        n_tokens = int(s.loc[s.layer == layer, "n_tokens"].iloc[0])
        assert rows["count"].sum() == n_tokens  # nodes (with 'other') hold every item
        assert rows["token"].iloc[-1] == OTHER_TOKEN and len(rows) == 9  # 8 drawn + other
        top = ls[ls.layer == layer].sort_values("rank").head(8)
        assert rows["token"].iloc[:8].tolist() == top["token"].tolist()


def test_formatting_helpers():
    assert fmt(1234567) == "1,234,567" and fmt(np.int64(5)) == "5"
    assert fmt(float("nan")) == "—" and fmt(0.12345) == "0.1235"
    assert fmt(6.9e10) == "69,000,000,000" and fmt(2.0**70) == "1.181e+21"
    names = ["topk_200", "drop_layer_2", "topk_20", "none", "popularity"]
    assert sorted(names, key=natural_key) == [
        "popularity", "none", "drop_layer_2", "topk_20", "topk_200"]
