"""The rewrite_sids config: invalid parameters fail at parse time, naming the key, without a JVM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hourglass.config import ConfigError
from hourglass.rewrite.export import export_sid_index, load_sid_index, sid_index_dir
from hourglass.rewrite.trie import SidTrie
from hourglass.stages.rewrite_sids import RewriteSidsConfig


def test_defaults_and_section():
    cfg = RewriteSidsConfig.from_dict({"output_root": "/tmp/x"})
    assert cfg.strategies == ["none"] and cfg.resolve_collisions
    assert RewriteSidsConfig.section() == "rewrite_sids"
    assert sid_index_dir(cfg.index_folder_root(), "topk_16") == "/tmp/x/sid_index/topk_16"


def test_cli_flags_and_pipeline_section(tmp_path):
    path = tmp_path / "demo.json"
    path.write_text(json.dumps({"rewrite_sids": {"output_root": "out",
                                                 "strategies": ["none", "topk(16)"]}}))
    cfg = RewriteSidsConfig.from_args(["--config", str(path), "--strategies",
                                       "none,drop_layer(2),topk(4),topshare(0.5)",
                                       "--num_layers", "3"])
    assert [s.name for s in cfg.parsed_strategies()] == [
        "none", "drop_layer_2", "topk_4", "topshare_0.5"]


@pytest.mark.parametrize("data,key", [
    ({"strategies": ["topk(-1)"]}, "strategies"),
    ({"strategies": ["topshare(0)"]}, "strategies"),
    ({"strategies": ["topshare(1.01)"]}, "strategies"),
    ({"strategies": ["reverse"]}, "strategies"),
    ({"strategies": ["drop_layer(4)"], "num_layers": 3}, "strategies"),
    ({"strategies": ["topk(2)"], "num_layers": 1}, "strategies"),
    ({"strategies": ["topk(2)", "topk_2"]}, "strategies"),
    ({"strategies": []}, "strategies"),
    ({"num_layers": -1}, "num_layers"),
    ({"output_root": ""}, "index_root"),
    ({"output_root": "s3://bucket/tables"}, "index_root"),
])
def test_invalid_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        RewriteSidsConfig.from_dict({"output_root": "/tmp/x", **data})


def test_stage_module_imports_no_pyspark():
    code = ("import sys, hourglass.stages.rewrite_sids, hourglass.rewrite.strategies, "
            "hourglass.rewrite.trie, hourglass.rewrite.export; "
            "sys.exit(int('pyspark' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_export_round_trip_and_tamper_check(tmp_path):
    folder = sid_index_dir(str(tmp_path), "topk_1")
    sids = [["<a_0>", "<c_2>", "<d_0>"], ["<a_0>", "<c_2>", "<d_1>"], ["<a_1>", "<b_1>", "<c_2>"]]
    info = export_sid_index(folder, SidTrie.build(sids),
                            {"strategy": "topk_1", "source_codebook_id": "cb"})
    assert (info.n_sids, info.max_depth, info.vocab_size) == (3, 3, 6)
    trie, vocab, manifest = load_sid_index(folder)
    assert vocab == trie.vocab and manifest["strategy"] == "topk_1"
    assert manifest["n_sids"] == 3 and trie.meta["source_codebook_id"] == "cb"
    assert {tuple(s) for s in trie} == {tuple(s) for s in sids}
    with open(f"{folder}/trie.npz", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match="hash"):
        load_sid_index(folder)
    (tmp_path / "sid_index" / "topk_1" / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError):
        load_sid_index(folder)


@pytest.mark.parametrize("spec,message", [("topk(-1)", "topk K must be >= 0"),
                                          ("exchange(1,1)", "swaps a layer with itself")])
def test_job_exits_2_on_a_bad_parameter_before_spark_starts(tmp_path, spec, message):
    from pathlib import Path

    job = Path(__file__).resolve().parents[2] / "jobs" / "rewrite_sids.py"
    proc = subprocess.run([sys.executable, str(job), "--output_root", str(tmp_path),
                           "--strategies", f"none,{spec}"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "'strategies'" in proc.stderr
    assert list(tmp_path.iterdir()) == []
