"""Two nightly runs of the pipeline with different codebook seeds train two models in two run
folders; each is evaluated against its own SIDs, the crossed pairing is refused, and re-running
an unchanged night trains nothing. The tiny catalog and task are those of test_deepspeed_sft."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_deepspeed_sft import N_ITEMS, _train_cfg, catalog_walks

from hourglass.spark.tables import read_table, write_table
from hourglass.stages import evaluate, pipeline
from hourglass.train.launch import run_training
from hourglass.train.runs import ModelMismatchError, plan_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]

N_USERS, STEPS = 40, 8


def _night(spark, root: str, seed: int) -> dict:
    """Codebooks of this seed → item_sids → item_sids_rw → sft_examples, as the DAG runs them."""
    steps = [{"stage": "train_codebooks", "num_layers": 2, "codebook_size": 4,
              "kmeans_iters": 5, "seed": seed},
             {"stage": "encode_items"},
             {"stage": "rewrite_sids", "strategies": ["none"]},
             {"stage": "build_sft_data", "strategies": ["none"], "history_max_items": 4}]
    pipeline.run(spark, pipeline.PipelineConfig.from_dict({"output_root": root, "steps": steps}))
    sids = read_table(spark, f"{root}/item_sids_rw")
    codebook = {r[0] for r in sids.df.select("source_codebook_id").distinct().collect()}
    return {"sids_version": sids.version, "codebook_id": codebook.pop(),
            "sft_version": read_table(spark, f"{root}/sft_examples").version}


def _evaluate(spark, root: str, run_id: str, **kw) -> evaluate.EvaluateResult:
    return evaluate.run(spark, evaluate.EvaluateConfig.from_dict({
        "output_root": root, "run_id": run_id, "strategies": ["none"], "beam_size": 5,
        "recall_ks": [1, 5], "ndcg_ks": [5], "max_users": 8, "batch_users": 8,
        "include_popularity": False, **kw}))


def test_each_night_trains_its_own_model_and_is_scored_on_its_own_sids(spark, tmp_path):
    root = str(tmp_path / "tables")
    rng = np.random.default_rng(11)
    emb = [(f"i{i}", [float(x) for x in rng.normal(size=8)], "test") for i in range(N_ITEMS)]
    write_table(spark.createDataFrame(emb, "item_id string, embedding array<float>, model string"),
                f"{root}/item_embeddings", {"job": "test"})
    write_table(spark.createDataFrame(catalog_walks(rng, N_USERS),
                                      "user_id string, item_id string, ts long"),
                f"{root}/interactions", {"job": "test"})
    world = {"root": root}

    def train(**kw) -> dict:
        cfg = _train_cfg(world, tmp_path, "unused", output_dir="", max_steps=STEPS,
                         save_every=0, record_shard_keys=False, eval_at_start=False, **kw)
        return run_training(cfg, launcher="python")

    night1 = _night(spark, root, seed=1)
    first = train()
    run1 = Path(first["model_dir"]).parent
    assert run1.parent == tmp_path / "tables" / "sft_runs" / "none"
    recorded = json.loads((run1 / "run.json").read_text())
    assert {k: recorded[k] for k in night1} == night1  # what it trained on, in its folder
    assert first["steps"] == STEPS and not first["skipped"]
    assert _evaluate(spark, root, "night1").models == {"none": first["model_dir"]}

    night2 = _night(spark, root, seed=2)  # the next night: new codebook, new SIDs, new SFT data
    assert night2["codebook_id"] != night1["codebook_id"]
    assert night2["sids_version"] > night1["sids_version"]
    second = train(scheduler_run_id="scheduled__night:2")
    run2 = Path(second["model_dir"]).parent
    assert run2 == run1.parent / "scheduled__night_2" and second["start_step"] == 0
    assert (second["sids_version"], second["codebook_id"]) == (
        night2["sids_version"], night2["codebook_id"])
    out2 = _evaluate(spark, root, "night2", scheduler_run_id="scheduled__night:2")
    assert out2.models == {"none": second["model_dir"]}
    assert out2.sids_version == night2["sids_version"]
    # without the scheduler's id, the SID version evaluated picks the model: the latest finds
    # night 2's, night 1's (read by time travel) finds night 1's
    latest = evaluate.EvaluateConfig.from_dict({"output_root": root, "run_id": "x"})
    assert evaluate.locate_model(latest, "none", night2["sids_version"]).model_dir == (
        second["model_dir"])
    assert evaluate.locate_model(latest, "none", night1["sids_version"]).model_dir == (
        first["model_dir"])
    rows = read_table(spark, f"{root}/eval_results").df.where("metric = 'users'").collect()
    assert {r.run_id for r in rows} == {"night1", "night2"}

    # the crossed pairing: night 2's model against night 1's SIDs
    with pytest.raises(ModelMismatchError, match=(
            f"trained on item_sids_rw version {night2['sids_version']} .*reads version "
            f"{night1['sids_version']}")):
        _evaluate(spark, root, "crossed", scheduler_run_id="scheduled__night:2",
                  sids_version=night1["sids_version"])

    # an unchanged re-run of night 2 (a task retry) trains nothing and keeps its model
    weights = (run2 / "final" / "model.safetensors").read_bytes()
    again = train(scheduler_run_id="scheduled__night:2")
    assert again["skipped"] and again["model_dir"] == second["model_dir"]
    assert (run2 / "final" / "model.safetensors").read_bytes() == weights
    # and night 1's inputs, given again, name night 1's folder
    cfg1 = _train_cfg(world, tmp_path, "unused", output_dir="", sft_version=night1["sft_version"],
                      sids_version=night1["sids_version"])
    assert plan_run(cfg1).run_dir == str(run1)
