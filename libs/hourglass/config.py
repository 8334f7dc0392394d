"""Typed job configuration from CLI flags or a JSON/YAML file.

Every job declares one dataclass, validated on every construction. Values come from an optional
`--config FILE` and then `--key value` flags (flags win). Unknown keys and values that do not
parse are errors that name the key, because a silently ignored typo in a scheduled pipeline
costs a day.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from hourglass.errors import ConfigError
from hourglass.table_refs import table_ref

T = TypeVar("T", bound="JobConfig")


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


def split_list(text: str) -> list[str]:
    """`a,b(1,2),c` → ['a', 'b(1,2)', 'c']: commas inside parentheses belong to the item, so a
    list flag can carry `exchange(1,2)`; otherwise exactly `str.split(",")`."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")" and depth > 0)
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


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
            items = split_list(value) if isinstance(value, str) else list(value)
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


def key_docs(cls: type) -> dict[str, str]:
    """Each key's one line of meaning: its field's `metadata["help"]`, else the `Keys:` section
    of the docstring of the class (or a base) that declares it, written as `name: meaning`."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        start = next((i + 1 for i, ln in enumerate(lines) if ln.strip() == "Keys:"), len(lines))
        name = ""
        for line in lines[start:]:
            match = _KEY_LINE.match(line)
            if match:
                name, docs[match.group(1)] = match.group(1), match.group(2).strip()
            elif line.startswith("        ") and name:
                docs[name] += " " + line.strip()
            else:
                break
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            docs[f.name] = f.metadata["help"]
    return docs


_KEY_LINE = re.compile(r"^    (\w+): (.*)$")


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _type_name(tp: Any) -> str:
    """`int`, `list[str]`, `int | None` as a person reads them in --help."""
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


@dataclasses.dataclass
class JobConfig:
    """Base of every job config; subclasses add fields and override `validate`.

    Every key is documented once, in the `Keys:` section of its class's docstring (or its
    field's `metadata["help"]`); `--help` prints that line with the key's type and default.
    """

    def __post_init__(self) -> None:
        """Validate on every construction (from_dict, dataclasses.replace, direct calls), so no
        code path holds an invalid config."""
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for invalid values; called after every construction."""

    def preflight(self) -> None:
        """Raise ConfigError for what the environment the job runs in refuses, once, before
        any work (the values themselves are checked by `validate`): a tracked job's MLflow
        experiment name that the tracking server would refuse at the first run."""
        if getattr(self, "tracking", False):
            from hourglass.tracking import experiment_name

            experiment_name()

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
        return cls(**kwargs)

    @classmethod
    def from_args(cls: type[T], argv: list[str] | None = None, app_name: str = "hourglass") -> T:
        """Parse `--config URI` plus `--key value` overrides; unknown flags are errors.

        `app_name` names the Spark session started when the config lies on a Hadoop filesystem.
        """
        ns, extra = cls.arg_parser(app_name).parse_known_args(argv)
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
    def summary(cls) -> str:
        """What the job does: the first paragraph of its docstring (--help, Spark job names)."""
        return " ".join(inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].split())

    @classmethod
    def arg_parser(cls, prog: str | None = None) -> argparse.ArgumentParser:
        """`--config`, `--debug` and one `--key` per field, each with its type, default and
        meaning; the description is the first paragraph of the class docstring."""
        parser = argparse.ArgumentParser(
            prog=prog, description=f"{cls.summary()} Keys come from --config and then --key flags "
            "(flags win).", allow_abbrev=False)
        parser.add_argument("--config", metavar="URI", help="JSON or YAML file with config keys: "
                            "a local path or any URI the cluster reads (file:, dbfs:, s3a:, "
                            "abfss:, hdfs:)")
        parser.add_argument("--debug", action="store_true", help="show the traceback of an "
                            "expected error (bad config, missing input) instead of one line")
        parser.add_argument("--version", action="version",
                            version=f"%(prog)s {importlib.metadata.version('hourglass')}")
        docs = key_docs(cls)
        for f in dataclasses.fields(cls):
            default = _default_of(f)
            shown = "required" if default is dataclasses.MISSING else f"default: {default!r}"
            parser.add_argument(f"--{f.name}", dest=f.name, default=None,
                                metavar=_type_name(f.type).upper(),
                                help=f"{docs.get(f.name, '')} ({shown})".replace("%", "%%"))
        return parser

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
    """`output_root`: folder holding the Delta tables by path; empty means catalog names.

    Keys:
        output_root: folder (or URI) holding the Delta tables by path; empty: catalog table names
        quarantine_table: table of rejected rows (item_id, stage, reason, payload)
    """

    output_root: str = ""
    quarantine_table: str = "quarantine"

    def ref(self, name: str) -> str:
        """Where table `name` lives: `output_root/name`, or the catalog name itself."""
        return table_ref(self.output_root or None, name)


def require(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError naming `key` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")
