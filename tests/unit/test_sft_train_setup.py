"""DeepSpeed JSON validation, launcher arguments, SID tokenizers and new-embedding init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hourglass import resources
from hourglass.config import ConfigError
from hourglass.resources import deepspeed_config_file, deepspeed_config_names
from hourglass.sft.format import SPECIAL_TOKENS
from hourglass.sft.tokenizer import SpecialIds, build_sid_tokenizer, sid_vocabulary
from hourglass.train.config import TrainConfig, parse_train_args
from hourglass.train.ds_config import finish_ds_config, load_ds_config, validate_ds_config
from hourglass.train.launch import launcher_command

BASE = {"train_micro_batch_size_per_gpu": 8, "optimizer": {"type": "AdamW",
                                                           "params": {"lr": 1e-3}}}


@pytest.mark.parametrize("name,stage,half", [
    ("zero2_cpu_fp32.json", 2, False), ("zero3_cpu_fp32.json", 3, False),
    ("zero2_gpu_bf16.json", 2, True), ("zero3_gpu_bf16.json", 3, True)])
def test_shipped_configs_validate(name, stage, half):
    device = "cuda" if half else "cpu"
    path = str(deepspeed_config_file(name))
    _, s = load_ds_config(path, device)
    assert (s.zero_stage, s.bf16, s.fp16) == (stage, half, False)
    if half:  # a GPU config is refused on CPU rather than silently run in fp32
        with pytest.raises(ConfigError, match="bf16"):
            load_ds_config(path, "cpu")


@pytest.mark.parametrize("patch,key", [
    ({"train_micro_batch_size_per_gpus": 8}, "train_micro_batch_size_per_gpus"),
    ({"train_micro_batch_size_per_gpu": 0}, "train_micro_batch_size_per_gpu"),
    ({"gradient_accumulation_steps": 1.5}, "gradient_accumulation_steps"),
    ({"optimizer": {"type": "SGD", "params": {"lr": 1}}}, "optimizer.type"),
    ({"optimizer": {"type": "AdamW", "params": {}}}, "optimizer.params.lr"),
    ({"scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 5}}},
     "scheduler.params.total_num_steps"),
    ({"zero_optimization": {"stage": 4}}, "zero_optimization.stage"),
    ({"bf16": {"enabled": "yes"}}, "bf16.enabled"),
    ({"fp16": {"enable": True}}, "fp16"),
])
def test_invalid_keys_are_named(patch, key):
    cfg = {**BASE, **patch}
    if "train_micro_batch_size_per_gpus" in patch:
        cfg.pop("train_micro_batch_size_per_gpu")
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        validate_ds_config(cfg)


def test_finish_sets_run_values_once():
    cfg = {**BASE, "gradient_accumulation_steps": 2,
           "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 3}}}
    out = finish_ds_config(cfg, max_steps=50, world_size=3)
    assert out["scheduler"]["params"]["total_num_steps"] == 50
    assert out["train_batch_size"] == 8 * 2 * 3
    assert "total_num_steps" not in cfg["scheduler"]["params"]  # input left untouched
    with pytest.raises(ConfigError, match="train_batch_size"):
        finish_ds_config({**cfg, "train_batch_size": 16}, max_steps=5, world_size=3)


def test_launcher_arguments_are_dropped(tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(BASE))
    cfg = parse_train_args(["--local_rank=1", "--output_root", str(tmp_path), "--max_steps", "7",
                            "--deepspeed", "--deepspeed_config", str(ds), "--local_rank", "0"])
    assert (cfg.max_steps, cfg.deepspeed_config) == (7, str(ds))
    assert cfg.fixed_run_dir() == ""  # keyed by the inputs: tests/unit/test_sft_runs.py
    with pytest.raises(ConfigError, match="max_stepz"):
        parse_train_args(["--output_root", str(tmp_path), "--max_stepz", "3"])
    with pytest.raises(ConfigError, match="num_heads"):
        TrainConfig.from_dict({"output_root": str(tmp_path), "hidden_size": 30, "num_heads": 4})
    with pytest.raises(ConfigError, match="sft_table"):
        TrainConfig.from_dict({"output_root": "", "output_dir": str(tmp_path)})
    cmd = launcher_command("c.json", "deepspeed", 2, 29555)
    assert cmd[1:] == ["-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port",
                       "29555", "--module", "hourglass.train", "--config", "c.json"]
    with pytest.raises(ValueError):
        launcher_command("c.json", "python", 2)


def test_sid_tokenizer_is_word_level():
    vocab = sid_vocabulary([["<b_10>", "<a_2>"], ["<a_10>", "<b_2>", "<d_0>"]])
    assert vocab == ["<a_2>", "<a_10>", "<b_2>", "<b_10>", "<d_0>"]  # by (layer, code)
    tok = build_sid_tokenizer(vocab)
    assert tok.convert_ids_to_tokens(list(range(len(tok)))) == [*SPECIAL_TOKENS, *vocab]
    assert tok("<a_10> <b_2> <sep>")["input_ids"] == [6, 7, 4]
    sp = SpecialIds.of(tok)
    assert (sp.pad, sp.unk, sp.bos, sp.eos, sp.sep) == (0, 1, 2, 3, 4)
    with pytest.raises(ValueError):
        sid_vocabulary([["<a_1>", "<sep>"]])


def test_pretrained_model_gets_sid_tokens_at_the_mean_embedding(tmp_path):
    """A local HF model path: new SID rows start near the mean of the existing rows."""
    import torch

    from hourglass.train.model import load_tokenizer_and_model

    base_cfg = TrainConfig.from_dict({"output_root": str(tmp_path), "hidden_size": 32,
                                      "num_heads": 2, "intermediate_size": 64})
    tok, model = load_tokenizer_and_model(base_cfg, [f"<a_{i}>" for i in range(40)])
    with torch.no_grad():  # give the "pretrained" rows a mean far from 0
        model.get_input_embeddings().weight.add_(3.0)
    folder = tmp_path / "pretrained"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = TrainConfig.from_dict({"output_root": str(tmp_path), "model": str(folder)})
    new_vocab = [f"<a_{i}>" for i in range(40)] + [f"<b_{i}>" for i in range(6)]
    tok2, model2 = load_tokenizer_and_model(cfg, new_vocab)
    emb = model2.get_input_embeddings().weight.detach()
    old_n = model.get_input_embeddings().weight.shape[0]
    assert len(tok2) == emb.shape[0] == old_n + 6
    new_ids = tok2.convert_tokens_to_ids([f"<b_{i}>" for i in range(6)])
    assert sorted(new_ids) == list(range(old_n, old_n + 6))
    old_mean = emb[:old_n].mean(0)
    assert torch.allclose(emb[new_ids].mean(0), old_mean, atol=0.5)
    assert float(emb[new_ids].mean()) > 2.0  # not the default N(0, 0.02) init
    assert Path(cfg.ds_config_path()).is_file()


def test_deepspeed_config_by_packaged_name_or_path(tmp_path, monkeypatch):
    """A bare file name is a packaged config (found in the package, not the checkout); a path
    wins when it exists; a name that is neither fails naming the packaged ones."""
    monkeypatch.chdir(tmp_path)
    assert deepspeed_config_names() == ["zero2_cpu_fp32.json", "zero2_gpu_bf16.json",
                                        "zero3_cpu_fp32.json", "zero3_gpu_bf16.json"]
    cfg = TrainConfig.from_dict({"output_root": str(tmp_path)})
    packaged = Path(cfg.ds_config_path())
    assert packaged == deepspeed_config_file("zero2_cpu_fp32.json")
    assert packaged.parent == Path(resources.__file__).parent / "deepspeed"
    (tmp_path / "zero2_cpu_fp32.json").write_text(packaged.read_text())
    assert cfg.ds_config_path() == "zero2_cpu_fp32.json"  # the local file, relative to cwd
    for bad in ("zero9.json", "deploy/deepspeed/zero2_gpu_bf16.json"):
        with pytest.raises(ConfigError, match="zero2_gpu_bf16.json"):
            TrainConfig.from_dict({"output_root": str(tmp_path), "deepspeed_config": bad})


def test_query_words_come_from_train_queries_and_unknown_words_are_unk():
    from hourglass.sft.format import QUERY_END
    from hourglass.sft.tokenizer import QueryIds, query_ids_for, query_vocabulary, query_words

    assert query_words("Office  Electronics, Cordless-Phones 2") == [
        "office", "electronics", "cordless", "phones", "2"]
    words = query_vocabulary(["ink toner", None, "Toner laser", ""])
    assert words == ["ink", "laser", "toner"]
    sids = sid_vocabulary([["<a_1>", "<b_0>"], ["<a_0>", "<b_2>"]])
    plain = build_sid_tokenizer(sids)
    tok = build_sid_tokenizer(sids, words)
    vocab = tok.get_vocab()
    # SID ids do not move; <q> and the words come after them
    assert all(vocab[t] == plain.get_vocab()[t] for t in [*SPECIAL_TOKENS, *sids])
    assert [vocab[t] for t in (QUERY_END, *words)] == list(range(len(plain), len(tok)))
    q = QueryIds(tok, "words", max_tokens=2)
    unk = SpecialIds.of(tok).unk
    assert q.ids("Laser printer toner") == [vocab["laser"], unk, vocab[QUERY_END]]
    assert q.unknown == 1
    with pytest.raises(ValueError, match="no query"):
        q.ids(None)
    with pytest.raises(ValueError, match="has no <q>"):
        QueryIds(plain, "words")
    assert query_ids_for(plain, {}) is None and query_ids_for(plain, {"given_prefix": 1}) is None
    made = query_ids_for(tok, {"prompt_mode": "query_history", "query_tokens": "words",
                               "max_query_tokens": 2})
    assert made is not None and made.ids("ink ink ink") == [vocab["ink"]] * 2 + [
        vocab[QUERY_END]]


def test_prompt_mode_is_validated():
    with pytest.raises(ConfigError, match="prompt_mode"):
        TrainConfig(output_root="/tmp/x", prompt_mode="search").validate()


def test_a_pretrained_backbone_splits_queries_with_its_own_tokenizer():
    """The bundled sentence encoder's WordPiece tokenizer stands in for a backbone's: the query
    is its own subwords, then the added `<q>`; SID tokens stay single ids."""
    from transformers import AutoTokenizer

    from hourglass.embed.encoder import default_model_dir
    from hourglass.sft.format import QUERY_END
    from hourglass.sft.tokenizer import QueryIds, extend_tokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir())
    extend_tokenizer(tok, ["<a_0>", "<b_1>"], query=True)
    q = QueryIds(tok, "backbone")
    text = "cordless telephones"
    expected = tok(text, add_special_tokens=False)["input_ids"]
    assert q.ids(text) == [*expected, tok.convert_tokens_to_ids(QUERY_END)]
    assert len(tok.tokenize("<a_0> <b_1>")) == 2 and q.unknown == 0


def test_only_this_runs_shared_memory_buffers_are_removed(tmp_path):
    """DeepSpeed's CPU ranks leave `deepspeed_allreduce_buffer_<uid>_<addr>_<port>_<rank>` in
    /dev/shm; the launcher removes those of its own port and nothing else."""
    import os

    from hourglass.train.launch import remove_shm_buffers

    uid = os.getuid()
    mine = [f"deepspeed_allreduce_buffer_{uid}_127.0.0.1_29500_{r}" for r in (0, 1)]
    others = [f"deepspeed_allreduce_buffer_{uid}_127.0.0.1_29501_0",  # another run's port
              f"deepspeed_allreduce_buffer_{uid}_127.0.0.1_295000_0",  # a longer port
              f"deepspeed_allreduce_buffer_{uid + 1}_127.0.0.1_29500_0",  # another user
              f"deepspeed_allreduce_buffer_{uid}_127.0.0.1_29500_x", "unrelated"]
    for name in mine + others:
        (tmp_path / name).write_bytes(b"x")
    assert remove_shm_buffers("127.0.0.1", 29500, tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)
