"""The notebooks' shared helpers outside a notebook (plain Python, as the tests run them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from hourglass.notebook import repo_root, show, widget


def test_widget_reads_the_environment_then_the_default(monkeypatch):
    monkeypatch.setenv("NB_OUTPUT_ROOT", "/tmp/x")
    monkeypatch.delenv("NB_RUN_ID", raising=False)
    assert widget("output_root", "demo", "Tables") == "/tmp/x"
    assert widget("run_id", "r1", "Run") == "r1"


def test_repo_root_is_the_parent_of_notebooks():
    root = Path(__file__).resolve().parents[2]
    assert repo_root(str(root / "notebooks" / "run_pipeline.py")) == root


def test_show_writes_figures_and_prints_frames(tmp_path, capsys):
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    show(fig, "line", tmp_path)
    assert (tmp_path / "line.png").read_bytes()[:4] == b"\x89PNG"
    show(pd.DataFrame({"a": [1, 2]}))
    assert "a" in capsys.readouterr().out
    with pytest.raises(ValueError):
        show(fig)
