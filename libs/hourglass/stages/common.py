"""The entry point every stage job shares: parse the config, build the session, run, print."""

from __future__ import annotations

import dataclasses
import sys

from hourglass.config import StageConfig
from hourglass.logs import setup_logging


def to_jsonable(value):
    """Dataclasses (also nested in lists/dicts) → plain dicts, for the job's closing summary."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def main_for(cfg_cls: type[StageConfig], run, app_name: str, argv: list[str] | None = None):
    """Entry point shared by every `jobs/<stage>.py`: parse config, get session, run.

    A config error exits with status 2 and a message naming the key, before the stage's work
    (and before Spark starts, unless the config itself lies on a Hadoop filesystem).
    """
    import json

    from hourglass.config import ConfigError
    from hourglass.spark.progress import spark_step
    from hourglass.spark.session import get_spark

    setup_logging()
    try:
        cfg = cfg_cls.from_args(sys.argv[1:] if argv is None else argv, app_name)
        cfg.preflight()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    spark = get_spark(app_name)
    with spark_step(spark, cfg_cls.section(), cfg_cls.summary(), bar=True):
        result = run(spark, cfg)
    print(json.dumps({"job": app_name, "result": to_jsonable(result)}, default=str, indent=2))
    return result
