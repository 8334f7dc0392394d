"""Stats and report configs: validation names the key; L and M from config, codebook, table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hourglass.config import ConfigError
from hourglass.stages.hourglass_stats import HourglassStatsConfig, _shape
from hourglass.stages.report import ReportConfig


@pytest.mark.parametrize("bad, key", [
    ({}, "run_id"), ({"run_id": "a b"}, "run_id"), ({"run_id": "x", "head_share": 1.5},
                                                    "head_share"),
    ({"run_id": "x", "input_kind": "tsv"}, "input_kind"), ({"run_id": "x", "num_codes": 1},
                                                           "num_codes"),
    ({"run_id": "x", "flow_top_tokens": 0}, "flow_top_tokens"),
    ({"run_id": "x", "typo_key": 1}, "typo_key"),
    ({"run_id": "x", "strategy": "exchange_1_2"}, "strategy.*tokens of `none`"),
])
def test_stats_config_errors_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        HourglassStatsConfig.from_dict(bad)


def test_shape_sources(tmp_path):
    calls = []

    def infer():  # the full-table pass: only when neither config nor codebook says
        calls.append(1)
        return 3, 40

    cfg = HourglassStatsConfig(output_root=str(tmp_path), run_id="r")
    assert _shape(cfg, "fixed", "cb9", infer) == (3, 41, "inferred") and calls == [1]
    (tmp_path / "codebooks" / "cb9").mkdir(parents=True)
    (tmp_path / "codebooks" / "cb9" / "manifest.json").write_text(json.dumps({"L": 3, "M": 64}))
    assert _shape(cfg, "fixed", "cb9", infer) == (3, 64, "codebook")
    assert _shape(cfg, "rewritten", "cb9", infer) == (3, 64, "codebook") and calls == [1]
    cfg.num_codes = 128
    assert _shape(cfg, "fixed", "cb9", infer) == (3, 128, "config")
    other = HourglassStatsConfig(output_root=str(tmp_path / "elsewhere"), run_id="r")
    with pytest.raises(ConfigError, match="num_layers"):
        _shape(other, "rewritten", "cb9", infer)
    other.num_layers = 3
    with pytest.raises(ConfigError, match="num_codes"):
        _shape(other, "rewritten", "cb9", infer)


def test_report_config_folder():
    assert ReportConfig(output_root="demo-output/tables").folder() == "demo-output/report"
    assert ReportConfig(output_root="x", report_dir="file:/tmp/r").folder() == "/tmp/r"
    with pytest.raises(ConfigError, match="report_dir"):
        ReportConfig.from_dict({})
    with pytest.raises(ConfigError, match="report_dir"):
        ReportConfig.from_dict({"report_dir": "s3://bucket/report"})
    assert ReportConfig.section() == "report"
    assert HourglassStatsConfig.section() == "hourglass_stats"


def test_pure_modules_do_not_import_spark():
    """In a fresh interpreter: other tests in this process may have imported pyspark."""
    code = ("import sys, hourglass.report.render, hourglass.spark.stats.rows, "
            "hourglass.spark.stats.scan.driver, hourglass.stages.hourglass_stats, "
            "hourglass.stages.report; "
            "sys.exit('pyspark' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
