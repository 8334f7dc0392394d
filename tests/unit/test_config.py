from __future__ import annotations

import dataclasses
import json

import pytest

from hourglass.config import ConfigError, JobConfig, require


@dataclasses.dataclass
class DemoConfig(JobConfig):
    path: str = ""
    k: int = 4
    share: float = 0.5
    fields: list[str] = dataclasses.field(default_factory=lambda: ["title"])
    flag: bool = False
    note: str | None = None

    def validate(self) -> None:
        require(bool(self.path), "path", "is required")
        require(self.k >= 0, "k", "must be >= 0")


def test_flags_override_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"path": "/x", "k": 3, "share": 0.25}))
    cfg = DemoConfig.from_args(["--config", str(f), "--k", "7", "--fields", "title,brand",
                                "--flag", "true"])
    assert (cfg.path, cfg.k, cfg.share, cfg.fields, cfg.flag) == ("/x", 7, 0.25,
                                                                 ["title", "brand"], True)
    assert cfg.note is None


def test_yaml_section(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("demo:\n  path: /y\n  k: 2\nother:\n  z: 1\n")
    assert DemoConfig.from_args(["--config", str(f)]).k == 2


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="'kk'"):
        DemoConfig.from_dict({"path": "/x", "kk": 3})
    with pytest.raises(ConfigError, match="--bogus"):
        DemoConfig.from_args(["--path", "/x", "--bogus", "1"])


@pytest.mark.parametrize(("key", "value"), [("k", "three"), ("k", 1.5), ("share", "x"),
                                           ("flag", "maybe"), ("k", True)])
def test_invalid_value_names_key(key, value):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        DemoConfig.from_dict({"path": "/x", key: value})


def test_validate_runs_and_hash_is_stable():
    with pytest.raises(ConfigError, match="'k'"):
        DemoConfig.from_dict({"path": "/x", "k": -1})
    with pytest.raises(ConfigError, match="'path'"):
        DemoConfig.from_dict({})
    a = DemoConfig.from_dict({"path": "/x", "k": 1})
    b = DemoConfig.from_dict({"k": "1", "path": "/x"})
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != DemoConfig.from_dict({"path": "/x", "k": 2}).config_hash()


def test_pipeline_file_step_is_picked(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("output_root: /out\nsteps:\n  - stage: demo\n    path: /p\n    k: 5\n"
                 "  - stage: other\n    z: 1\n  - stage: twice\n  - stage: twice\n")
    cfg = DemoConfig.from_args(["--config", str(f)])
    assert (cfg.path, cfg.k) == ("/p", 5)

    @dataclasses.dataclass
    class TwiceConfig(JobConfig):
        output_root: str = ""

    with pytest.raises(ConfigError, match="2 steps of stage 'twice'"):
        TwiceConfig.from_args(["--config", str(f)])


def test_list_flags_keep_commas_inside_parentheses():
    from hourglass.config import split_list

    assert split_list("none,exchange(1,2),topk(4)") == ["none", "exchange(1,2)", "topk(4)"]
    assert split_list("a,,b") == ["a", "", "b"] and split_list("") == [""]
    assert split_list("x(1,2") == ["x(1,2"]  # unbalanced: one item, refused by its parser
