"""SFT data → 2-rank CPU DeepSpeed fine-tune → resume → constrained evaluation, on a task whose
answer is learnable: every user walks the catalog in order, so the next item is the successor of
the last one. A model that learns it must beat the popularity baseline by far."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hourglass.resources import deepspeed_config_file
from hourglass.sft.examples import user_examples
from hourglass.sft.format import EOS
from hourglass.spark.tables import read_table, write_table
from hourglass.stages import build_sft_data, evaluate, hourglass_stats
from hourglass.train.config import TrainConfig
from hourglass.train.launch import run_training
from hourglass.train.runs import run_dir_of

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]

N_ITEMS, N_USERS, STEPS, SAVE_EVERY = 24, 140, 90, 60


def _sid(i: int) -> list[str]:
    return [f"<a_{i // 6}>", f"<b_{i % 6}>"]


def catalog_walks(rng: np.random.Generator, n_users: int) -> list[tuple[str, str, int]]:
    """(user_id, item_id, ts): each user walks 5–8 consecutive items of the N_ITEMS catalog."""
    rows = []
    for u in range(n_users):
        start, n = int(rng.integers(N_ITEMS)), int(rng.integers(5, 9))
        rows += [(f"u{u}", f"i{(start + j) % N_ITEMS}", 10 * j) for j in range(n)]
    return rows


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """Tables of the synthetic task, SFT data built for two strategies."""
    root = str(tmp_path_factory.mktemp("sft_e2e") / "tables")
    rng = np.random.default_rng(7)
    rows = catalog_walks(rng, N_USERS)
    rows += [("short", "i0", 1), ("short", "i1", 2), ("u0", "nosid", 999)]
    rng.shuffle(rows)
    inter = spark.createDataFrame(rows, "user_id string, item_id string, ts long")
    sids = [(f"i{i}", _sid(i), "none", "cb") for i in range(N_ITEMS)]
    sids += [(f"i{i}", [f"<a_{i // 6}>", f"<d_{i % 6}>"], "drop_layer_2", "cb")
             for i in range(N_ITEMS)]
    sids_df = spark.createDataFrame(
        sids, "item_id string, tokens array<string>, strategy string, source_codebook_id string")
    for name, df in (("interactions", inter), ("item_sids_rw", sids_df)):
        write_table(df, f"{root}/{name}", {"job": "test"})
    # the stats run whose layer-2 token tags split the evaluation into head and tail
    hourglass_stats.run(spark, hourglass_stats.HourglassStatsConfig(
        output_root=root, run_id="stats1", input_table="item_sids_rw", strategy="none",
        num_layers=2, num_codes=6, tracking=False))
    result = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict(
        {"output_root": root, "strategies": ["none", "drop_layer(2)"], "history_max_items": 4}))
    return {"root": root, "rows": rows, "sft": result}


def _reference_and_table(spark, world, table: str, strategy: str, tok, stride: int = 1):
    """(want, got): the plain-Python examples of every user and the rows of `table`."""
    by_user: dict[str, list] = {}
    for user, item, ts in world["rows"]:
        if item != "nosid":
            by_user.setdefault(user, []).append((ts, item))
    sids = {f"i{i}": tok(i) for i in range(N_ITEMS)}
    want = sorted((e.user_id, e.split, e.history, e.target_item_id, e.prompt_tokens,
                   e.target_tokens) for u, ev in by_user.items()
                  for e in user_examples(u, ev, sids, 4, train_stride=stride))
    df = read_table(spark, f"{world['root']}/{table}").df
    got = sorted((r.user_id, r.split, tuple(r.history), r.target_item_id,
                  tuple(r.prompt_tokens), tuple(r.target_tokens))
                 for r in df.where(f"strategy = '{strategy}'").collect())
    return want, got


def test_sft_examples_match_the_reference(spark, world):
    res = world["sft"]
    for strategy, tok in (("none", _sid), ("drop_layer_2",
                                           lambda i: [f"<a_{i // 6}>", f"<d_{i % 6}>"])):
        want, got = _reference_and_table(spark, world, "sft_examples", strategy, tok)
        assert got == want
        c = next(s for s in res.strategies if s.strategy == strategy)
        assert (c.users_kept, c.users_too_short, c.test, c.valid) == (N_USERS, 1, N_USERS, N_USERS)
        assert c.quarantine_reasons == {
            f"item has no SID for strategy '{strategy}'": 1,
            "user has 2 usable interactions, fewer than 3": 2}
        assert c.interactions_in == len(world["rows"])


def test_train_stride_matches_the_reference_and_counts_dropped_targets(spark, world):
    res = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
        "output_root": world["root"], "strategies": ["none"], "history_max_items": 4,
        "train_stride": 4, "output_table": "sft_strided", "quarantine_table": "q_strided"}))
    want, got = _reference_and_table(spark, world, "sft_strided", "none", _sid, stride=4)
    assert got == want
    every = next(s for s in world["sft"].strategies if s.strategy == "none")
    (c,) = res.strategies
    # walks of 5-8 items: 2-5 train positions each, 1-2 windows kept at stride 4
    assert 0 < c.train < every.train and c.train + c.history_only == every.train
    assert c.train == sum(1 for w in want if w[1] == "train")
    assert (c.valid, c.test, c.quarantined) == (every.valid, every.test, every.quarantined)
    assert c.interactions_in == len(world["rows"])


def _train_cfg(world, tmp: Path, name: str, **overrides) -> TrainConfig:
    ds = json.loads(deepspeed_config_file("zero2_cpu_fp32.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 32
    ds["scheduler"]["params"]["warmup_num_steps"] = 10
    # the learnable toy task trains in 90 steps at a higher rate than the shipped recipe's
    ds["optimizer"]["params"]["lr"] = ds["scheduler"]["params"]["warmup_max_lr"] = 3e-3
    (tmp / "ds.json").write_text(json.dumps(ds))
    return TrainConfig.from_dict({
        "output_root": world["root"], "strategy": "none", "output_dir": str(tmp / name),
        "hidden_size": 64, "num_heads": 4, "intermediate_size": 128, "max_seq_len": 64,
        "deepspeed_config": str(tmp / "ds.json"), "max_steps": STEPS, "log_every": 30,
        "save_every": SAVE_EVERY, "keep_checkpoints": 3, "record_shard_keys": True,
        "progress": False, "seed": 3, **overrides})


def _shard_keys(cfg: TrainConfig, ranks: int = 2) -> list[list[tuple]]:
    """The (user_id, split, target_item_id) keys each rank recorded reading."""
    return [[tuple(k) for k in json.loads(
        (Path(run_dir_of(cfg)) / "shards" / f"rank_{r}.json").read_text())["keys"]]
        for r in range(ranks)]


def _table_keys(spark, world, result: dict) -> list[tuple]:
    """The same keys of strategy 'none' in the sft_examples version the run trained on."""
    table = read_table(spark, f"{world['root']}/sft_examples", result["sft_version"]).df
    return [(r.user_id, r.split, r.target_item_id)
            for r in table.where("strategy = 'none'").collect()]


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    cfg = _train_cfg(world, tmp, "run")
    return cfg, run_training(cfg, launcher="deepspeed", num_procs=2)


def test_two_ranks_read_disjoint_shards_covering_the_table(spark, world, trained):
    cfg, result = trained
    assert result["world_size"] == 2 and result["steps"] == STEPS
    keys = _shard_keys(cfg)
    assert keys[0] and keys[1] and not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == sorted(_table_keys(spark, world, result))
    assert abs(len(keys[0]) - len(keys[1])) <= 1
    assert result["valid_loss_end"] < 0.5 * result["valid_loss_start"]  # it learned


def test_resume_continues_where_it_stopped(world, trained, tmp_path):
    from safetensors.numpy import load_file

    cfg, first = trained
    src = Path(run_dir_of(cfg))
    resumed = _train_cfg(world, tmp_path, "resumed")
    dst = Path(run_dir_of(resumed))
    shutil.copytree(src / "checkpoints" / f"step_{SAVE_EVERY}",
                    dst / "checkpoints" / f"step_{SAVE_EVERY}")
    (dst / "checkpoints" / "latest").write_text(f"step_{SAVE_EVERY}")
    shutil.copy(src / "run.json", dst / "run.json")
    second = run_training(resumed, launcher="deepspeed", num_procs=2)
    assert second["start_step"] == SAVE_EVERY and second["steps"] == STEPS
    logged = [json.loads(x)["step"] for x in (dst / "metrics.jsonl").read_text().splitlines()]
    assert logged == [s for s in range(30, STEPS + 1, 30) if s > SAVE_EVERY]
    a = load_file(str(src / "final" / "model.safetensors"))
    b = load_file(str(dst / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert second["valid_loss_end"] == pytest.approx(first["valid_loss_end"], rel=1e-4)


@pytest.fixture(scope="module")
def evaluated(spark, world, trained):
    """The trained model evaluated (and registered in MLflow's model registry)."""
    cfg, _ = trained
    ecfg = evaluate.EvaluateConfig.from_dict({
        "output_root": world["root"], "run_id": "e2e", "strategies": ["none"],
        "runs_root": str(Path(run_dir_of(cfg)).parent), "beam_size": 10,
        "recall_ks": [1, 5, 10], "ndcg_ks": [5, 10], "batch_users": 16,
        "register_strategy": "none"})
    # the trained run folder is named "run", so evaluate it as strategy "none" through a link
    link = Path(run_dir_of(cfg)).parent / "none"
    if not link.exists():
        link.symlink_to(Path(run_dir_of(cfg)))
    return evaluate.run(spark, ecfg)


def test_evaluation_beats_popularity(spark, world, evaluated):
    out = evaluated
    assert out.users == {"none": N_USERS, "popularity": N_USERS}
    res = {(r.strategy, r.subset, r.metric, r.k): r.value
           for r in read_table(spark, f"{world['root']}/eval_results").df.collect()}
    assert res[("none", "all", "recall", 1)] > 0.8
    assert res[("popularity", "all", "recall", 1)] < 0.15
    assert res[("none", "all", "recall", 10)] >= res[("none", "all", "recall", 1)]
    assert res[("none", "head", "users", 0)] + res[("none", "tail", "users", 0)] == N_USERS
    want = free_decoder_invalid_shares(spark, world, trained_model_dir(evaluated), (1, 5, 10))
    for k, share in want.items():
        assert res[("none", "all", "invalid_ratio", k)] == pytest.approx(share, abs=0.02)
    assert ("popularity", "all", "invalid_ratio", 1) not in res


def trained_model_dir(evaluated) -> str:
    return evaluated.models["none"]


def free_decoder_invalid_shares(spark, world, model_dir: str, ks) -> dict[int, float]:
    """On the driver, outside Spark and the trie: the share of the unconstrained beam's top-k
    hypotheses per test user that are not one of the catalog's SIDs (a plain set), averaged
    over users (a batch size other than the job's may flip near-tied beams: `abs` above)."""
    from hourglass.decode.ranking import Catalog, Ranker
    from hourglass.evaluation.lm import load_finetuned

    model, tok, _ = load_finetuned(model_dir)
    sids = {tuple(_sid(i)) for i in range(N_ITEMS)}
    test = (read_table(spark, f"{world['root']}/sft_examples").df
            .where("strategy = 'none' AND split = 'test'").select("prompt_tokens").collect())
    catalog = Catalog.build([f"i{i}" for i in range(N_ITEMS)], [_sid(i) for i in range(N_ITEMS)])
    ranker = Ranker(model, tok, catalog, beam=10, max_prompt_len=64 - 3)  # max_seq_len - SID - </s>
    out = ranker.decode(ranker.prompts([list(r["prompt_tokens"]) for r in test]),
                        constrained=False)
    eos = tok.convert_tokens_to_ids(EOS)
    valid = np.array([[bool(out.finished[u, b]) and np.isfinite(out.scores[u, b])
                       and tuple(tok.convert_ids_to_tokens(out.sequence(u, b, eos))) in sids
                       for b in range(out.scores.shape[1])] for u in range(len(test))])
    assert len(test) == N_USERS
    return {k: float((1.0 - valid[:, :k].mean(axis=1)).mean()) for k in ks}


def test_mlflow_runs_hold_eval_results_and_the_fine_tune(spark, world, trained, evaluated):
    """Read back from the local store with MlflowClient: one child run per strategy whose
    metrics are exactly the eval_results rows; the fine-tune's per-step metrics, DeepSpeed
    params, lineage tags and model; the registered model points at that logged model."""
    from mlflow.tracking import MlflowClient

    from hourglass.evaluation.tracked import metric_name
    from hourglass.tracking import tracking_uri

    cfg, result = trained
    client = MlflowClient(tracking_uri(world["root"]))
    exp = client.get_experiment_by_name("hourglass").experiment_id
    runs = client.search_runs([exp], "tags.`hourglass.eval_run_id` = 'e2e'")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["hourglass.strategy"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"none", "popularity"}
    rows = read_table(spark, f"{world['root']}/eval_results").df.where("run_id = 'e2e'").collect()
    for strategy, child in children.items():
        mine = {metric_name(r.subset, r.metric, r.k): r.value for r in rows
                if r.strategy == strategy}
        assert child.data.metrics == {**mine, "users": N_USERS}
    assert children["none"].data.tags["hourglass.sids_version"] == str(result["sids_version"])
    tables = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"eval_results.json", "table2.json"} <= tables

    (fine_tune,) = client.search_runs(
        [exp], f"tags.`hourglass.run_dir` = '{run_dir_of(cfg)}'")
    logged = [json.loads(x) for x in (Path(run_dir_of(cfg)) / "metrics.jsonl").read_text()
              .splitlines()]
    history = client.get_metric_history(fine_tune.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(x["step"], x["train_loss"]) for x in logged]
    tags, params = fine_tune.data.tags, fine_tune.data.params
    assert (tags["hourglass.codebook_id"], tags["hourglass.strategy"]) == ("cb", "none")
    assert tags["hourglass.sft_version"] == str(result["sft_version"])
    assert params["deepspeed.train_micro_batch_size_per_gpu"] == "32"
    assert params["max_steps"] == str(STEPS)
    model_files = {a.path for a in client.list_artifacts(fine_tune.info.run_id, "model")}
    assert "model/model.safetensors" in model_files

    version = client.get_model_version("hourglass-sid-retrieval",
                                       evaluated.registered_version)
    assert version.run_id == parent.info.run_id  # the pyfunc is logged by the evaluation
    assert version.source == f"{parent.info.artifact_uri}/sid_retriever"
    assert version.tags["hourglass.train_run_id"] == fine_tune.info.run_id
    assert version.tags["hourglass.sids_version"] == str(result["sids_version"])
    assert float(version.tags["metric.all/recall_at_1"]) == pytest.approx(
        children["none"].data.metrics["all/recall_at_1"], rel=1e-5)


def test_registered_pyfunc_generates_sids_for_a_history(world, evaluated, monkeypatch):
    """The registered model loaded back as a pyfunc (registry URI, signature, no Spark): for
    each walk it names whole SIDs of the catalog, best first, and the items behind them; the
    same items the evaluation's own ranker finds for that prompt; mostly the walk's next item."""
    import mlflow
    import pandas as pd

    from hourglass.decode.ranking import Catalog, Ranker
    from hourglass.evaluation.lm import load_finetuned
    from hourglass.sft.format import join_history
    from hourglass.tracking import tracking_uri

    # the store the job wrote, for the registry and the artifacts behind the model version
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(world["root"]))
    model = mlflow.pyfunc.load_model(
        f"models:/hourglass-sid-retrieval/{evaluated.registered_version}")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["history"]
    walks = [[f"i{(s + j) % N_ITEMS}" for j in range(3)] for s in range(N_ITEMS)]
    walks[0] = [*walks[0], "unknown-item"]  # an item without a SID is left out of the prompt
    out = model.predict(pd.DataFrame({"history": walks}), params={"k": 5})
    assert list(out.columns) == ["item_ids", "sids", "scores"] and len(out) == N_ITEMS
    whole = {" ".join(_sid(i)) for i in range(N_ITEMS)}
    for row in out.itertuples():
        assert len(row.item_ids) == 5 and len(row.sids) == 5
        assert set(row.sids) <= whole and list(row.scores) == sorted(row.scores, reverse=True)

    lm, tok, _ = load_finetuned(trained_model_dir(evaluated))
    items = [f"i{i}" for i in range(N_ITEMS)]
    ranker = Ranker(lm, tok, Catalog.build(items, [_sid(i) for i in range(N_ITEMS)]), beam=10,
                    max_prompt_len=64 - 3)
    prompts = [join_history([_sid(int(i[1:])) for i in w if i in items]) for w in walks]
    beams = ranker.decode(ranker.prompts(prompts), constrained=True)
    assert [list(r) for r in out["item_ids"]] == [ranker.items(beams, u, 5)
                                                  for u in range(N_ITEMS)]
    nxt = [row[0] == f"i{(s + 3) % N_ITEMS}" for s, row in enumerate(out["item_ids"])]
    assert np.mean(nxt) > 0.8


def test_spark_metrics_equal_numpy(spark):
    from hourglass.evaluation.metrics import ndcg_at, recall_at
    from hourglass.spark.evaluation import metric_rows

    rng = np.random.default_rng(5)
    ranks = rng.integers(0, 12, size=60)
    segs = rng.choice(["head", "tail", None], size=60)
    inv = rng.random((60, 2))
    df = spark.createDataFrame(
        [(int(r), [float(x) for x in v], s) for r, v, s in zip(ranks, inv, segs, strict=True)],
        "rank int, invalid array<double>, segment string")
    got = {(s, m, k): v for s, m, k, v in metric_rows(df, [1, 5], [5], [1, 10])}
    for subset, mask in (("all", np.ones(60, bool)), ("head", segs == "head")):
        r = ranks[mask]
        assert got[(subset, "users", 0)] == mask.sum()
        assert got[(subset, "recall", 5)] == pytest.approx(recall_at(r, 5))
        assert got[(subset, "ndcg", 5)] == pytest.approx(ndcg_at(r, 5))
        assert got[(subset, "invalid_ratio", 10)] == pytest.approx(inv[mask, 1].mean())


def test_spark_distributor_trains_two_ranks(spark, world, tmp_path):
    """The Spark-cluster path: pyspark's DeepspeedTorchDistributor (local mode, CPU) runs the
    same trainer on 2 torchrun ranks, which read disjoint shards covering the table."""
    from hourglass.spark.distributor import run_with_distributor

    cfg = dataclasses.replace(_train_cfg(world, tmp_path, "distributor"), max_steps=30,
                              save_every=0)
    result = run_with_distributor(cfg, num_procs=2, use_gpu=False)
    assert result["world_size"] == 2 and result["steps"] == 30
    keys = [set(k) for k in _shard_keys(cfg)]
    assert not keys[0] & keys[1]
    assert keys[0] | keys[1] == set(_table_keys(spark, world, result))
    assert result["valid_loss_end"] < result["valid_loss_start"]
    assert (Path(run_dir_of(cfg)) / "final" / "model.safetensors").is_file()


def brute_force_recall(spark, world, model_dir: str, result: dict, k: int) -> float:
    """Valid Recall@k of a saved model by scoring every catalog SID (plus `</s>`) with one plain
    forward each: no beam, no trie, no cache, independent of the trainer's probe."""
    from hourglass.decode.stepper import sequence_logprob
    from hourglass.evaluation.lm import load_finetuned

    model, tok, _ = load_finetuned(model_dir)
    ids = tok.convert_tokens_to_ids
    bos, sep, eos = ids("<s>"), ids("<sep>"), ids(EOS)
    sids = {f"i{i}": [*ids(_sid(i)), eos] for i in range(N_ITEMS)}
    valid = (read_table(spark, f"{world['root']}/sft_examples", result["sft_version"]).df
             .where("strategy = 'none' AND split = 'valid'").collect())
    hits = 0
    for r in valid:
        prompt = [bos, *ids(list(r.prompt_tokens)), sep]
        scores = {item: sequence_logprob(model, prompt, s) for item, s in sids.items()}
        top = sorted(scores, key=lambda item: -scores[item])[:k]
        hits += r.target_item_id in top
    return hits / len(valid)


def test_checkpoint_selected_by_valid_recall(spark, world, tmp_path):
    """select_by valid_recall on 2 ranks: Recall@k is logged at every check, the exported model
    is the step with the best figure (the first of equals), and that figure is the model's own
    Recall@k over every valid user, recomputed by brute force from the exported folder."""
    cfg = _train_cfg(world, tmp_path, "selected", select_by="valid_recall", eval_every=30,
                     recall_k=3, recall_beam=N_ITEMS, save_every=0)
    result = run_training(cfg, launcher="deepspeed", num_procs=2)
    run_dir = Path(run_dir_of(cfg))
    logged = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    recalls = {x["step"]: x["valid_recall@3"] for x in logged if "valid_recall@3" in x}
    assert list(recalls) == [30, 60, STEPS]
    best = max(recalls.values())
    assert result["selected_step"] == min(s for s, v in recalls.items() if v == best)
    assert result["valid_recall"] == best and result["stopped_step"] == STEPS
    meta = json.loads((run_dir / "final" / "hourglass_sft.json").read_text())
    assert meta["selected_step"] == result["selected_step"]
    assert brute_force_recall(spark, world, str(run_dir / "final"), result, 3) == \
        pytest.approx(best)


def test_given_prefix_trains_and_decodes_the_rest_of_the_sid(spark, world, tmp_path):
    """Table 1's "Given Layer 1" on one rank: the fine-tune records given_prefix 1, the
    evaluation continues each SID from the target's first token, and the rows are labelled
    `none+given_1`, never `none`. The walk's successor is learnable, and knowing its first token
    can only help: Recall@1 stays high. (The validation probe's given path runs in
    tests/e2e/test_paper_study.py.)"""
    cfg = _train_cfg(world, tmp_path, "given", given_prefix=1, max_steps=60, save_every=0,
                     eval_at_start=False)
    run_training(cfg, launcher="python", num_procs=1)
    run_dir = Path(run_dir_of(cfg))
    assert json.loads((run_dir / "final" / "hourglass_sft.json").read_text())["given_prefix"] == 1
    (tmp_path / "none").symlink_to(run_dir)
    out = evaluate.run(spark, evaluate.EvaluateConfig.from_dict({
        "output_root": world["root"], "run_id": "given", "strategies": ["none"],
        "runs_root": str(tmp_path), "beam_size": 6, "recall_ks": [1, 5], "ndcg_ks": [5],
        "batch_users": 32, "include_popularity": False, "tracking": False}))
    assert out.users == {"none+given_1": N_USERS}
    res = {(r.strategy, r.subset, r.metric, r.k): r.value
           for r in read_table(spark, f"{world['root']}/eval_results").df
           .where("run_id = 'given'").collect()}
    assert {s for s, *_ in res} == {"none+given_1"}
    assert res[("none+given_1", "all", "recall", 1)] > 0.8
    # a search that starts inside the trie only ever completes whole SIDs of that first token
    assert 0.0 <= res[("none+given_1", "all", "invalid_ratio", 5)] <= 1.0
def test_query_prompts_train_evaluate_and_serve(spark, world, tmp_path):
    """Prompt mode `query` on a task only the query can answer: each walk's items are random,
    and each interaction's query names its item in words of its own (`item seven`), so the
    history says nothing and Recall@1 is high only if the query reaches the model. The SFT rows
    record the mode, a fine-tune or evaluation of another mode refuses them in one line, and
    the MLflow retriever answers a `query` column the same way."""
    import mlflow.pyfunc
    import pandas as pd

    from hourglass.errors import InputError
    from hourglass.evaluation.pyfunc import save_retriever

    words = ["zero", "one", "two", "three", "four", "five"]
    root = str(tmp_path / "tables")
    rng = np.random.default_rng(5)
    rows = [(f"u{u}", f"i{i}", 10 * j, f"item {words[i // 6]} {words[i % 6]} please")
            for u in range(N_USERS) for j, i in enumerate(rng.integers(N_ITEMS, size=5))]
    rows.append(("u0", "i1", 99, None))  # a purchase nobody searched for
    write_table(spark.createDataFrame(rows, "user_id string, item_id string, ts long, "
                                      "query string"), f"{root}/interactions", {"job": "test"})
    write_table(read_table(spark, f"{world['root']}/item_sids_rw").df, f"{root}/item_sids_rw",
                {"job": "test"})
    sft = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict(
        {"output_root": root, "strategies": ["none"], "history_max_items": 4,
         "prompt_mode": "query"}))
    assert sft.strategies[0].quarantine_reasons == {"no query (prompt_mode query)": 1}
    cfg = dataclasses.replace(_train_cfg(world, tmp_path, "query", max_steps=80, save_every=0,
                                         eval_at_start=False, prompt_mode="query"),
                              output_root=root)
    with pytest.raises(InputError, match="built with prompt_mode query, this fine-tune asks"):
        run_training(dataclasses.replace(cfg, prompt_mode="query_history"), launcher="python")
    run_training(cfg, launcher="python", num_procs=1)
    run_dir = Path(run_dir_of(cfg))
    meta = json.loads((run_dir / "final" / "hourglass_sft.json").read_text())
    assert (meta["prompt_mode"], meta["query_tokens"]) == ("query", "words")
    (tmp_path / "runs" / "none").parent.mkdir()
    (tmp_path / "runs" / "none").symlink_to(run_dir)
    eval_keys = {"output_root": root, "strategies": ["none"], "runs_root": str(tmp_path / "runs"),
                 "beam_size": 6, "recall_ks": [1, 5], "ndcg_ks": [5], "batch_users": 32,
                 "include_popularity": False, "measure_invalid": False, "tracking": False}
    out = evaluate.run(spark, evaluate.EvaluateConfig.from_dict({**eval_keys, "run_id": "q"}))
    assert out.users == {"none": N_USERS}
    res = {(r.metric, r.k): r.value for r in read_table(spark, f"{root}/eval_results").df
           .where("run_id = 'q' and subset = 'all'").collect()}
    assert res[("recall", 1)] > 0.8

    # the same model against rows of another mode: refused before any scoring
    hist = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict(
        {"output_root": root, "strategies": ["none"], "history_max_items": 4,
         "output_table": "sft_history", "quarantine_table": "q_history"}))
    with pytest.raises(InputError, match="fine-tuned with prompt_mode query, but"):
        evaluate.run(spark, evaluate.EvaluateConfig.from_dict(
            {**eval_keys, "run_id": "q2", "sft_table": "sft_history",
             "sft_version": hist.output_version}))

    sids = read_table(spark, f"{root}/item_sids_rw").df.where("strategy = 'none'").collect()
    path = save_retriever(tmp_path / "pyfunc", str(run_dir / "final"),
                          [r.item_id for r in sids], [list(r.tokens) for r in sids], {}, beam=6,
                          max_prompt_len=40, example_query="item one two please")
    served = mlflow.pyfunc.load_model(str(path))
    asked = pd.DataFrame({"query": [f"item {words[i // 6]} {words[i % 6]} please"
                                    for i in range(N_ITEMS)]})
    top = served.predict(asked, params={"k": 1})["item_ids"]
    assert np.mean([list(t)[:1] == [f"i{i}"] for i, t in enumerate(top)]) > 0.8


def test_focal_and_mile_train_through_deepspeed(world, tmp_path):
    """Two steps with each loss on one DeepSpeed rank (MiLe under loss_on all_items): the first
    logged focal loss is below the CE of the same batch and model (every focal weight is < 1),
    every loss is finite, valid_loss is CE whatever the training loss (the same untrained model
    scores the same), and run.json, the model's metadata and the MLflow params name the loss."""
    from mlflow.tracking import MlflowClient

    from hourglass.tracking import tracking_uri

    runs = {}
    for name, keys in (("ce", {}), ("focal", {"loss": "focal"}),
                       ("mile", {"loss": "mile", "mile_gamma": 2.0, "loss_on": "all_items"})):
        cfg = _train_cfg(world, tmp_path, f"loss_{name}", max_steps=2, log_every=1,
                         save_every=0, record_shard_keys=False, **keys)
        result = run_training(cfg, launcher="python")
        run_dir = Path(run_dir_of(cfg))
        logged = [json.loads(x)["train_loss"]
                  for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        runs[name] = (cfg, result, logged, run_dir)
    assert runs["focal"][2][0] < 0.99 * runs["ce"][2][0]
    client = MlflowClient(tracking_uri(world["root"]))
    exp = client.get_experiment_by_name("hourglass").experiment_id
    for name, gamma in (("ce", 0.0), ("focal", 2.0), ("mile", 2.0)):
        cfg, result, logged, run_dir = runs[name]
        assert len(logged) == 2 and all(np.isfinite(logged))
        assert np.isfinite([result["train_loss"], result["valid_loss_end"]]).all()
        assert result["valid_loss_start"] == pytest.approx(runs["ce"][1]["valid_loss_start"],
                                                           rel=1e-6)
        config = json.loads((run_dir / "run.json").read_text())["config"]
        meta = json.loads((run_dir / "final" / "hourglass_sft.json").read_text())
        assert (config["loss"], meta["loss"], meta["loss_gamma"]) == (name, name, gamma)
        (tracked,) = client.search_runs([exp], f"tags.`hourglass.run_dir` = '{run_dir}'")
        assert tracked.data.params["loss"] == name
        assert float(tracked.data.params["mile_gamma"]) == (2.0 if name == "mile" else 1.0)
