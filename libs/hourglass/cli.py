"""Console entry points of the jobs: `hourglass-<stage>` runs what `jobs/<stage>.py` runs.

The installed wheel is the product, so every job is a function of the package: pip makes one
`hourglass-<stage-with-dashes>` command per job (pyproject `[project.scripts]`), a Databricks
`python_wheel_task` names it as `entry_point`, and the files in `jobs/` (for spark-submit) are
two lines that call the same function. Arguments are the job's `--config FILE` and `--key value`
flags, read from `sys.argv`.

Expected failures (`hourglass.errors`) end in one line on stderr and their exit status: 2 for
the config, 3 for missing or invalid inputs. `--debug` shows their traceback instead; any other
exception keeps its traceback (status 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import sys
from collections.abc import Iterator
from typing import Any

from hourglass.errors import INPUT_ERROR, HourglassError

DEBUG_FLAG = "--debug"
# Spark's conditions for a table, path or column the query reads that is not there.
_MISSING_INPUT = ("UNRESOLVED_COLUMN", "FIELD_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND",
                  "PATH_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND")


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """The job's own arguments, and whether `--debug` was among them."""
    return [a for a in argv if a != DEBUG_FLAG], DEBUG_FLAG in argv


def _spark_missing_input(exc: BaseException) -> str:
    """The condition of a Spark AnalysisException about a missing input, else ""."""
    errors = sys.modules.get("pyspark.errors")  # no pyspark loaded: not a Spark error
    if errors is None or not isinstance(exc, errors.AnalysisException):
        return ""
    condition = exc.getCondition() or ""
    return condition if condition.startswith(_MISSING_INPUT) else ""


@contextlib.contextmanager
def expected_errors(prog: str, debug: bool = False) -> Iterator[None]:
    """Expected failures → `prog: error: …` and their exit status; the rest propagate."""
    try:
        yield
    except HourglassError as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_status) from None
    except Exception as exc:
        condition = _spark_missing_input(exc)
        if not condition or debug:
            raise
        first = str(exc).strip().splitlines()[0]
        print(f"{prog}: error: an input lacks what the job reads ({first}); check the table "
              "names and columns against docs/contract.md, or run the stage that writes them",
              file=sys.stderr)
        raise SystemExit(INPUT_ERROR) from None


@dataclasses.dataclass(frozen=True)
class Job:
    """One job: its stage module and config class (`hourglass.stages.<name>` by default)."""

    name: str
    config: str
    module: str = ""
    command: str = ""  # the console command when it is not hourglass-<name with dashes>
    aliases: tuple[str, ...] = ()  # earlier names of the command, kept for a release

    @property
    def script(self) -> str:
        """The console command, e.g. `hourglass-encode-items` (also the Spark app name)."""
        return self.command or "hourglass-" + self.name.replace("_", "-")

    @property
    def module_name(self) -> str:
        return self.module or f"hourglass.stages.{self.name}"

    def config_class(self) -> type:
        return getattr(importlib.import_module(self.module_name), self.config)

    def parse(self, argv: list[str]) -> Any:
        """argv → the job's typed config (raises ConfigError naming the key)."""
        if self.name == "sft_train":
            from hourglass.train.config import parse_train_args

            return parse_train_args(argv)
        return self.config_class().from_args(argv)


JOBS: dict[str, Job] = {job.name: job for job in (
    Job("ingest", "IngestConfig"),
    Job("embed_items", "EmbedItemsConfig"),
    Job("synthesize", "SynthesizeConfig"),
    Job("train_codebooks", "TrainCodebooksConfig"),
    Job("encode_items", "EncodeItemsConfig"),
    Job("hourglass_stats", "HourglassStatsConfig", command="hourglass-stats",
        aliases=("hourglass-hourglass-stats",)),
    Job("rewrite_sids", "RewriteSidsConfig"),
    Job("build_sft_data", "BuildSftDataConfig"),
    Job("sft_train", "TrainConfig", module="hourglass.train.config"),
    Job("evaluate", "EvaluateConfig"),
    Job("ablation", "AblationConfig"),
    Job("report", "ReportConfig"),
    Job("pipeline", "PipelineConfig"),
)}


def run_job(name: str, argv: list[str] | None = None) -> Any:
    """Parse the job's flags, get the session, run the stage, print its JSON summary."""
    from hourglass.stages.common import main_for

    job = JOBS[name]
    args, debug = split_debug(sys.argv[1:] if argv is None else argv)
    with expected_errors(job.script, debug):
        module = importlib.import_module(job.module_name)
        return main_for(job.config_class(), module.run, job.script, args)


def ingest() -> None:
    run_job("ingest")


def embed_items() -> None:
    run_job("embed_items")


def synthesize() -> None:
    run_job("synthesize")


def train_codebooks() -> None:
    run_job("train_codebooks")


def encode_items() -> None:
    run_job("encode_items")


def hourglass_stats() -> None:
    run_job("hourglass_stats")


def rewrite_sids() -> None:
    run_job("rewrite_sids")


def build_sft_data() -> None:
    run_job("build_sft_data")


def sft_train() -> None:
    """One trainer rank (no Spark): under a launcher each rank runs this."""
    from hourglass.train.launch import main

    args, debug = split_debug(sys.argv[1:])
    with expected_errors(JOBS["sft_train"].script, debug):
        main(args)


def evaluate() -> None:
    run_job("evaluate")


def ablation() -> None:
    run_job("ablation")


def report() -> None:
    run_job("report")


def pipeline() -> None:
    """The report's path is the last line a person sees (after the JSON summary of each step)."""
    from hourglass.stages.pipeline import report_paths

    for path in report_paths(run_job("pipeline")):
        print(f"\nReport: file://{path}")
