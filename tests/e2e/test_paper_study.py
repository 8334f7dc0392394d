"""`hourglass-paper-tables --quick` end to end on the bundled office sample: the SID pipeline,
every kind of arm (exchange, given prefix, focal, MiLe, drop, a top@K share) fine-tuned with
DeepSpeed and evaluated, SASRec and popularity beside them, both tables, the invalid table, the
figure; then the same command again, which must recompute nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "hourglass-paper-tables"


def _run(out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(COMMAND), "--quick", "--dataset", "amazon-office",
                           "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "paper"
    first = _run(out)
    folder = out.with_name("paper-quick") / "amazon-office"
    return first, folder, json.loads((folder / "paper_tables.json").read_text())


def test_both_tables_hold_every_row_with_the_paper_metrics(study):
    proc, folder, result = study
    assert "Table 1" in proc.stdout and "Table 2" in proc.stdout
    md = (folder / "paper_tables.md").read_text()
    header = ("| Method | users | seeds | Recall@1 | Recall@3 | Recall@5 | Recall@10 | Recall@30 "
              "| Recall@50 | NDCG@10 |")
    assert md.count(header) == 2
    for row in ("| Base (none) | 200 | 1 |", "|   *Head token* |", "|   *Tail token* |",
                "| Exchange layer 1&2 | 200 |", "given layer 1 (diagnostic",
                "| Focal loss (Lin et al. 2017) | 200 |", "| MiLe loss (Su et al. 2024) | 200 |",
                "| Remove layer 2 | 200 |", "| Remove layer-2 top@6 (share 0.0977 of M=64) |",
                "| SASRec (same splits, same minutes) | 200 |", "| Popularity | 200 |"):
        assert row in md, row
    assert "| invalid@1 | invalid@3 | invalid@5 | invalid@10 | invalid@30 | invalid@50 |" in md
    assert result["M"] == 64 and result["k_used"]["top_share_0.0977"] == 6
    assert (folder / "table1_head_tail.png").stat().st_size > 10_000


def test_every_cell_scored_the_same_users_and_the_given_prefix_is_labelled(study):
    _, _, result = study
    cells = result["cells"]
    assert len(cells) == 8  # seven arms and SASRec at one seed
    for name, cell in cells.items():
        users = {(r[1], r[4]) for r in cell["rows"] if r[2] == "users" and r[1] == "all"}
        assert users == {("all", 200.0)}, name
    given = cells["exchange_1_2_given_1-seed1-0.1min"]
    assert {r[0] for r in given["rows"]} == {"exchange_1_2_given_1"}
    assert cells["base-seed1-0.1min"]["training"]["steps"] == 20
    assert {r[0] for r in cells["base-seed1-0.1min"]["rows"]} == {"base", "popularity"}


def test_a_rerun_with_the_same_arguments_recomputes_nothing(study):
    _, folder, result = study
    second = _run(folder.parent.with_name("paper"))
    again = json.loads((folder / "paper_tables.json").read_text())
    assert again["timings_s"] == {}  # nothing trained, evaluated or rebuilt
    assert again["table1"] == result["table1"] and again["table2"] == result["table2"]
    assert "Table 2" in second.stdout


def test_the_search_task_runs_every_arm_on_query_prompts_beside_the_search_baselines(
        tmp_path):
    """`--task search --quick`: queries derived from the sample, every arm fine-tuned on
    query_history prompts (their run records say so), each scored on the same 200 users as the
    three search baselines, SASRec and popularity, with head/tail lines."""
    out = tmp_path / "paper"
    proc = subprocess.run([str(COMMAND), "--quick", "--task", "search", "--dataset",
                           "amazon-office", "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    folder = tmp_path / "paper_search-quick" / "amazon-office"
    result = json.loads((folder / "search_tables.json").read_text())
    md = (folder / "search_tables.md").read_text()
    assert result["prompt_mode"] == "query_history" and result["queries"]["with_query"] == 53258
    for row in ("| Base (none) | 200 | 1 |", "| Remove layer 2 | 200 |",
                "| Remove layer-2 top@6 (share 0.0977 of M=64) | 200 |",
                "| Dense retrieval, query only (item encoder, faiss IP) | 200 |",
                "| Dense retrieval, query + history (blend α chosen on valid) | 200 |",
                "| Popularity among items matching the query | 200 |",
                "| SASRec (same splits, same minutes) | 200 |", "|   *Tail token* |"):
        assert row in md, row
    assert sorted(result["cells"]) == ["base-seed1-0.1min", "drop_layer_2-seed1-0.1min",
                                       "sasrec-seed1-0.1min", "top_share_0.0977-seed1-0.1min"]
    for name, cell in result["cells"].items():
        users = {r[4] for r in cell["rows"] if r[1] == "all" and r[2] == "users"}
        assert users == {200.0}, name
    records = sorted((folder / "runs").glob("*/*/run.json"))
    assert len(records) == 3
    assert {json.loads(r.read_text())["config"]["prompt_mode"] for r in records} == {
        "query_history"}
    assert 0.0 <= result["baselines"]["alpha"] <= 1.0
    assert (folder / "search_head_tail.png").stat().st_size > 10_000
