"""Which folder a fine-tune runs in, and which trained model an evaluation may score.

A run is keyed by what it trains on: `<runs_root>/<strategy>/<key>`, the key being
`sft<v>-sids<v>-<codebook>` (the Delta versions of `sft_examples` and `item_sids_rw` and the
codebook the SIDs came from), or the scheduler's run id when one is given (the folders and files
are named in `hourglass.train.layout`). So a nightly run on new SIDs trains a new model in a
new folder, and an unchanged re-run finds its own folder and resumes it (or skips it when
finished). The model folder records what it was trained on, and `find_model` refuses to pair it
with any other SID table version: a SID token means another item under another codebook or
rewrite.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hourglass.errors import ConfigError, InputError, MissingInputError
from hourglass.logs import log
from hourglass.train.layout import (
    FINAL_DIR,
    META_FILE,
    RESULT_FILE,
    RUN_FILE,
    input_key,
    run_folder_name,
    run_of_model,
    strategy_dir,
)

if TYPE_CHECKING:
    from hourglass.train.config import TrainConfig


class ModelMismatchError(InputError, ValueError):
    """A trained model was paired with SIDs other than those it was trained on."""


def _latest_version(table_uri: str) -> int:
    from hourglass.train.data import open_delta

    return int(open_delta(table_uri).version())


def codebook_of(sids_uri: str, strategy: str, version: int) -> str:
    """The `source_codebook_id` of a strategy's SIDs at `version` ("" when the table has none;
    several ids, which a single rewrite never writes, are joined by commas)."""
    from hourglass.train.data import open_delta, read_strategy_columns

    names = {f.name for f in open_delta(sids_uri, version).schema().fields}
    if "source_codebook_id" not in names:
        return ""
    _, cols = read_strategy_columns(sids_uri, strategy, ["source_codebook_id"], version)
    return ",".join(sorted({c for c in cols["source_codebook_id"] if c}))


@dataclass(frozen=True)
class RunPlan:
    """Where a fine-tune runs and exactly what it trains on."""

    run_dir: str
    strategy: str
    sft_version: int
    sids_version: int
    codebook_id: str
    scheduler_run_id: str

    def record(self) -> dict[str, Any]:
        """What run.json and the model's META_FILE hold (besides the config)."""
        return {k: v for k, v in asdict(self).items() if k != "run_dir"}


def recorded(run_dir: Path) -> dict[str, Any]:
    """The run.json of a run folder, or {}."""
    run_file = run_dir / RUN_FILE
    return json.loads(run_file.read_text()) if run_file.exists() else {}


def plan_run(cfg: TrainConfig) -> RunPlan:
    """The run folder and pinned inputs of `cfg`.

    A fixed folder (`output_dir`, or the scheduler's run id) keeps the versions it recorded, so
    a retried task resumes on its own data; mixing data is an error. Otherwise the versions
    (given, else the latest) and the codebook name the folder.
    """
    sft_uri, sids_uri = cfg.table_uri(cfg.sft_table), cfg.table_uri(cfg.sids_table)
    strategy = cfg.strategy_name
    fixed = cfg.fixed_run_dir()
    old = recorded(Path(fixed)) if fixed and cfg.resume else {}
    sft_v = cfg.sft_version if cfg.sft_version is not None else old.get("sft_version")
    sids_v = cfg.sids_version if cfg.sids_version is not None else old.get("sids_version")
    for name, given in (("sft_version", sft_v), ("sids_version", sids_v)):
        if old.get(name) is not None and given != old[name]:
            raise ConfigError(f"{fixed} was trained on {name}={old[name]}; resuming it with "
                              f"{given} would mix data: use a fresh output_dir (or drop "
                              f"{name} to resume on its own data)")
    sft_v = _latest_version(sft_uri) if sft_v is None else int(sft_v)
    sids_v = _latest_version(sids_uri) if sids_v is None else int(sids_v)
    codebook = old.get("codebook_id")
    if codebook is None:
        codebook = codebook_of(sids_uri, strategy, sids_v)
    run_dir = fixed or str(strategy_dir(cfg.runs_root(), strategy)
                           / (input_key(sft_v, sids_v, codebook) + cfg.objective_key()))
    return RunPlan(run_dir=run_dir, strategy=strategy, sft_version=sft_v, sids_version=sids_v,
                   codebook_id=codebook, scheduler_run_id=cfg.scheduler_run_id)


def run_dir_of(cfg: TrainConfig) -> str:
    """The run folder of `cfg`: its fixed folder, else the one its inputs key (which reads
    their Delta logs, `plan_run`)."""
    return cfg.fixed_run_dir() or plan_run(cfg).run_dir


def finished_result(plan: RunPlan, max_steps: int) -> dict[str, Any] | None:
    """The recorded result when this exact run already trained `max_steps` steps and exported
    its model, else None (then it is trained or resumed)."""
    run_dir = Path(plan.run_dir)
    result_file, meta_file = run_dir / RESULT_FILE, run_dir / FINAL_DIR / META_FILE
    if not (result_file.exists() and meta_file.exists()):
        return None
    result, meta = json.loads(result_file.read_text()), json.loads(meta_file.read_text())
    same = all(meta.get(k) == v for k, v in plan.record().items() if k != "scheduler_run_id")
    return result if same and result.get("steps") == max_steps else None


@dataclass(frozen=True)
class TrainedModel:
    """An exported model folder and the inputs it was trained on."""

    model_dir: str
    sft_version: int
    sids_version: int
    codebook_id: str


def trained_on(model_dir: Path) -> TrainedModel:
    """What a model folder was trained on, from its META_FILE (else its run's run.json)."""
    meta_file = model_dir / META_FILE
    rec = (json.loads(meta_file.read_text()) if meta_file.exists()
           else recorded(run_of_model(model_dir)))
    if rec.get("sids_version") is None or rec.get("sft_version") is None:
        raise ModelMismatchError(
            f"{model_dir} records no table versions it was trained on, so it cannot be paired "
            "with SIDs safely: retrain it with this version of hourglass")
    return TrainedModel(str(model_dir), int(rec["sft_version"]), int(rec["sids_version"]),
                        str(rec.get("codebook_id", "")))


def find_model(strategy_runs: Path, sids_version: int, sids_table: str,
               scheduler_run_id: str = "") -> TrainedModel:
    """The model of one strategy that was trained on `sids_version` of the SID table.

    `strategy_runs` is `<runs_root>/<strategy>`: with `scheduler_run_id` its run of that id;
    a folder that is itself a run (`final/` inside: `output_dir`, the ablation) that run;
    otherwise the runs keyed by their inputs, among which the one trained on this SID version
    (the newest SFT data on it if several). Any other pairing is refused.
    """
    if scheduler_run_id:
        fixed: Path | None = strategy_runs / run_folder_name(scheduler_run_id)
    elif (strategy_runs / FINAL_DIR).is_dir():
        fixed = strategy_runs
    else:
        fixed = None
    if fixed is not None:
        if not (fixed / FINAL_DIR).is_dir():
            raise MissingInputError(f"no fine-tuned model at {fixed / FINAL_DIR}: run sft_train "
                                    "(or the ablation) for this strategy first")
        model = trained_on(fixed / FINAL_DIR)
        if model.sids_version != sids_version:
            raise ModelMismatchError(
                f"the model {model.model_dir} was trained on {sids_table} version "
                f"{model.sids_version} (codebook {model.codebook_id or 'unknown'}), but this "
                f"evaluation reads version {sids_version}: its SID tokens would decode to other "
                f"items. Evaluate it against its own SIDs by time travel (--sids_version "
                f"{model.sids_version}), or fine-tune on version {sids_version} first.")
        return model
    runs = sorted(p for p in strategy_runs.glob("*") if (p / FINAL_DIR).is_dir())
    if not runs:
        raise MissingInputError(f"no fine-tuned model under {strategy_runs}: run sft_train for "
                                "this strategy first, or set runs_root to where its runs are")
    models = [trained_on(p / FINAL_DIR) for p in runs]
    mine = [m for m in models if m.sids_version == sids_version]
    if not mine:
        have = sorted({m.sids_version for m in models})
        raise ModelMismatchError(
            f"no model under {strategy_runs} was trained on {sids_table} version {sids_version};"
            f" the models there were trained on versions {have}. Fine-tune on version "
            f"{sids_version} first, or evaluate an existing model against its own SIDs by time "
            f"travel (--sids_version {have[-1]}).")
    newest = max(m.sft_version for m in mine)
    mine = [m for m in mine if m.sft_version == newest]
    if len(mine) > 1:  # objectives side by side (-given1, -focal2 …): the default, if there
        default = [m for m in mine if run_of_model(m.model_dir).name == input_key(
            m.sft_version, m.sids_version, m.codebook_id)]
        if len(default) != 1:
            raise InputError(
                f"{len(mine)} models under {strategy_runs} were trained on {sids_table} "
                f"version {sids_version} with other objectives: "
                f"{sorted(run_of_model(m.model_dir).name for m in mine)}; evaluate one by "
                "pointing runs_root at a folder holding only it")
        mine = default
    return mine[0]


def trained_given_prefix(model_dir: str | Path) -> int:
    """Target tokens the model was trained to continue from (`given_prefix`; 0 for a folder
    without a run record, as every model before the option)."""
    return int((recorded(run_of_model(model_dir)).get("config") or {}).get("given_prefix", 0))


def trained_prompt_mode(model_dir: str | Path) -> str:
    """What the model's prompts held (`prompt_mode`; `history` for a folder without a run
    record, as every model before the option)."""
    return str((recorded(run_of_model(model_dir)).get("config") or {}).get("prompt_mode",
                                                                          "history"))


def trained_max_seq_len(model_dir: str | Path, default: int) -> int:
    """The sequence budget a model was trained with: its run's recorded config (RUN_FILE beside
    FINAL_DIR), else `default` for a model folder that has no run record."""
    config = recorded(run_of_model(model_dir)).get("config")
    if config is None:
        log.warning("%s has no %s beside it; assuming max_seq_len=%d", model_dir, RUN_FILE,
                    default)
        return default
    return int(config.get("max_seq_len", default))
