"""Typed job configuration from CLI flags or a JSON/YAML file.

Every job declares one frozen-ish dataclass. Values come from an optional `--config FILE` and
then `--key value` flags (flags win). Unknown keys and values that do not parse are errors that
name the key, because a silently ignored typo in a scheduled pipeline costs a day.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from hourglass.table_refs import table_ref

T = TypeVar("T", bound="JobConfig")


class ConfigError(ValueError):
    """A configuration key is unknown, missing, or has an invalid value."""


# Where Databricks mounts DBFS on the driver; `dbfs:/x` is read as `/dbfs/x` when it exists.
DBFS_FUSE = Path("/dbfs")
# Two or more letters, so a Windows drive (`C:\conf.yaml`) stays a local path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def config_source(uri: str, dbfs_fuse: Path | None = None) -> tuple[str, str]:
    """Where a `--config` is read from: `("local", path)` or `("hadoop", uri)`.

    Plain paths and `file:` URIs are local files (no Spark is started for them); `dbfs:/x` is
    the FUSE file `/dbfs/x` when that mount exists; every other scheme (s3a, abfss, hdfs, gs,
    dbfs off Databricks …) goes through the cluster's Hadoop FileSystem.
    """
    match = _SCHEME.match(uri)
    if match is None:
        return "local", uri
    scheme = match.group(1).lower()
    parsed = urlparse(uri)
    if scheme == "file" and parsed.netloc in ("", "localhost"):
        return "local", unquote(parsed.path)
    fuse = dbfs_fuse or DBFS_FUSE
    if scheme == "dbfs" and not parsed.netloc and fuse.is_dir():
        return "local", str(fuse / unquote(parsed.path).lstrip("/"))
    return "hadoop", uri


def read_config_text(uri: str, app_name: str = "hourglass") -> str:
    """The text of a config file wherever the cluster keeps it (see `config_source`).

    A Hadoop URI needs the Spark session, which is built (or taken) here with `app_name`; the
    job gets the same session afterwards. Unreadable files are ConfigErrors (exit status 2).
    """
    kind, where = config_source(uri)
    if kind == "local":
        try:
            return Path(where).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {uri} not found") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read config file {uri}: {exc}") from exc
    from hourglass.spark.hadoop_files import HadoopReadError, read_bytes
    from hourglass.spark.session import get_spark

    try:
        return read_bytes(get_spark(app_name), where).decode("utf-8")
    except HadoopReadError as exc:
        raise ConfigError(str(exc)) from exc


def parse_config_text(text: str, name: str) -> dict[str, Any]:
    """A YAML (by `.yaml`/`.yml` suffix) or JSON mapping; `name` is only for messages."""
    import yaml

    yaml_file = name.endswith((".yaml", ".yml"))
    try:
        data = (yaml.safe_load(text) or {}) if yaml_file else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {name} does not parse: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {name} must hold a mapping, got {type(data).__name__}")
    return data


def _load_file(uri: str, app_name: str = "hourglass") -> dict[str, Any]:
    return parse_config_text(read_config_text(uri, app_name), uri)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert `value` (from YAML/JSON or a CLI string) to the field type `tp`."""
    base, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"config key '{key}' must not be null")
    origin = typing.get_origin(base)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if base is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
        if origin in (list, tuple):
            (item_tp, *_) = typing.get_args(base) or (str,)
            items = value.split(",") if isinstance(value, str) else list(value)
            out = [coerce(key, v.strip() if isinstance(v, str) else v, item_tp) for v in items]
            return out if origin is list else tuple(out)
        if origin is dict or base is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config key '{key}': cannot read {value!r} as {base}") from exc
    return value


@dataclasses.dataclass
class JobConfig:
    """Base of every job config; subclasses add fields and override `validate`."""

    def validate(self) -> None:
        """Raise ConfigError for invalid values; called after every construction."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown} for {cls.__name__}; known: {sorted(fields)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {k: coerce(k, v, hints[k]) for k, v in data.items()}
        missing = [
            n
            for n, f in fields.items()
            if n not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"missing required config key(s) {missing} for {cls.__name__}")
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def from_args(cls: type[T], argv: list[str] | None = None, app_name: str = "hourglass") -> T:
        """Parse `--config URI` plus `--key value` overrides; unknown flags are errors.

        `app_name` names the Spark session started when the config lies on a Hadoop filesystem.
        """
        parser = argparse.ArgumentParser(description=cls.__doc__, allow_abbrev=False)
        parser.add_argument("--config", help="JSON or YAML file with config keys: a local path "
                            "or any URI the cluster reads (file:, dbfs:, s3a:, abfss:, hdfs:)")
        for f in dataclasses.fields(cls):
            parser.add_argument(f"--{f.name}", dest=f.name, default=None, help=f"({f.type})")
        ns, extra = parser.parse_known_args(argv)
        if extra:
            raise ConfigError(f"unknown command-line argument(s) {extra} for {cls.__name__}")
        data = _load_file(ns.config, app_name) if ns.config else {}
        data = cls._section_of(data)
        for f in dataclasses.fields(cls):
            value = getattr(ns, f.name)
            if value is not None:
                data[f.name] = value
        return cls.from_dict(data)

    @classmethod
    def _section_of(cls, data: dict[str, Any]) -> dict[str, Any]:
        """This job's keys from a file: the whole mapping, its `<section>:` mapping, or, in a
        pipeline file (`steps:`), the one step of this stage plus the shared `output_root`."""
        name = cls.section()
        if isinstance(data.get(name), dict):
            return dict(data[name])
        steps = data.get("steps")
        if name == "pipeline" or not isinstance(steps, list):
            return data
        mine = [s for s in steps if isinstance(s, dict) and s.get("stage") == name]
        if len(mine) != 1:
            raise ConfigError(
                f"the pipeline file has {len(mine)} steps of stage '{name}'; run it with "
                f"jobs/pipeline.py --only {name}, or give this job a file of its own"
            )
        step = {k: v for k, v in mine[0].items() if k != "stage"}
        if "output_root" in data and "output_root" in {f.name for f in dataclasses.fields(cls)}:
            step.setdefault("output_root", data["output_root"])
        return step

    @classmethod
    def section(cls) -> str:
        """Name of this job's section (and stage) in a multi-job config file: the class name in
        snake_case without `Config` (EmbedItemsConfig → `embed_items`)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__.removesuffix("Config")).lower()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Stable hash of the values, recorded in table lineage."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass
class StageConfig(JobConfig):
    """`output_root`: folder holding the Delta tables by path; empty means catalog names."""

    output_root: str = ""
    quarantine_table: str = "quarantine"

    def ref(self, name: str) -> str:
        """Where table `name` lives: `output_root/name`, or the catalog name itself."""
        return table_ref(self.output_root or None, name)


def require(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError naming `key` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")
