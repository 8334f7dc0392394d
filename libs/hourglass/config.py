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
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="JobConfig")


class ConfigError(ValueError):
    """A configuration key is unknown, missing, or has an invalid value."""


def _load_file(path: str) -> dict[str, Any]:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


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
    def from_args(cls: type[T], argv: list[str] | None = None) -> T:
        """Parse `--config FILE` plus `--key value` overrides; unknown flags are errors."""
        parser = argparse.ArgumentParser(description=cls.__doc__, allow_abbrev=False)
        parser.add_argument("--config", help="JSON or YAML file with config keys")
        for f in dataclasses.fields(cls):
            parser.add_argument(f"--{f.name}", dest=f.name, default=None, help=f"({f.type})")
        ns, extra = parser.parse_known_args(argv)
        if extra:
            raise ConfigError(f"unknown command-line argument(s) {extra} for {cls.__name__}")
        data = _load_file(ns.config) if ns.config else {}
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
        """Name of this job's section in a multi-job (pipeline) config file."""
        return cls.__name__.removesuffix("Config").lower()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Stable hash of the values, recorded in table lineage."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def require(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError naming `key` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")
