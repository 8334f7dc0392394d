"""README.md stays true: every job is documented under its config section, every worked example
parses into the job's typed config, and every key the README names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_deploy_bundle import config_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
JOBS = sorted(p.stem for p in (ROOT / "jobs").glob("*.py"))
LAUNCHERS = {"deploy/deepspeed/launch_single_node.sh": "sft_train",
             "deploy/deepspeed/launch_multi_node.sh": "sft_train"}


def job_paragraph(job: str) -> str:
    start = README.index(f"**`{job}`**")
    end = README.find("\n**`", start + 1)
    return README[start:end if end > 0 else README.index("\n## ", start)]


def config_class(job: str) -> type:
    from hourglass.cli import JOBS

    return JOBS[job].config_class()


def commands() -> list[tuple[str, list[str]]]:
    """(job, argv) of every README line that runs a job file or a DeepSpeed launcher."""
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S))
    text = re.sub(r"\\\n\s*", " ", blocks)  # join continued lines
    found = []
    for line in text.splitlines():
        line = line.split("  #")[0]
        for script, job in [(f"jobs/{j}.py", j) for j in JOBS] + list(LAUNCHERS.items()):
            if f"{script} " in line:
                found.append((job, shlex.split(line.split(f"{script} ", 1)[1])))
    return found


@pytest.mark.parametrize("job", [j for j in JOBS if j != "pipeline"])
def test_every_job_is_documented_under_its_section(job):
    assert f"(section `{config_class(job).section()}`)" in job_paragraph(job)


def test_worked_examples_parse_into_each_jobs_config(monkeypatch):
    monkeypatch.chdir(ROOT)  # examples use paths relative to the checkout
    examples = commands()
    assert {job for job, _ in examples} == set(JOBS), "a job has no worked example"
    for job, argv in examples:
        argv = [a for a in argv if "<" not in a]  # placeholders such as <job>
        config_parser(ROOT / "jobs" / f"{job}.py")(argv)  # raises ConfigError naming the key


@pytest.mark.parametrize("job", [j for j in JOBS if j != "pipeline"])
def test_named_keys_exist(job):
    import dataclasses

    fields = {f.name for f in dataclasses.fields(config_class(job))}
    keys_text = job_paragraph(job).split("Keys", 1)[1].split("```")[0]
    keys_text = re.sub(r"\([^()]*\)", "", keys_text)  # defaults and asides, not keys
    named = re.findall(r"`([a-z_]+\*?)`", keys_text)
    assert named
    for key in named:
        if key.endswith("*"):
            assert any(f.startswith(key[:-1]) for f in fields), key
        else:
            assert key in fields, f"README names `{key}` for {job}; its config has no such key"


def test_committed_images_and_links_exist():
    """Relative links and images (not demo outputs a reader has yet to make) name real files."""
    targets = re.findall(r"\]\(([^)#\s]+)\)", README)
    local = [t for t in targets if "://" not in t and not t.startswith("demo-output/")]
    assert "docs/images/hourglass-flow.png" in local
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
