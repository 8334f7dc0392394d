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


REPO_DIRS = ("benchmarks/", "configs/", "data/", "deploy/", "docs/", "jobs/", "libs/",
             "notebooks/", "requirements/", "tests/")
OUTPUTS = ("benchmarks/results/",)  # written by a run, git-ignored: named, never committed


def _expand_braces(path: str) -> list[str]:
    """`zero{2,3}_x.json` → zero2_x.json, zero3_x.json (as the shell would)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    head, tail = path[:match.start()], path[match.end():]
    return [p for alt in match.group(1).split(",") for p in _expand_braces(head + alt + tail)]


def code_paths(text: str) -> list[str]:
    """Repository paths in inline code spans (`configs/x.yaml`, `jobs/pipeline.py --only …`),
    placeholders such as `jobs/<stage>.py` left out."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found = []
    for span in re.findall(r"`([^`\n]+)`", prose):
        token = span.split()[0].rstrip(".,;:")
        if (token.startswith(REPO_DIRS) and not token.startswith(OUTPUTS)
                and not re.search(r"[<>*…]", token)):
            found += _expand_braces(token)
    return found


def test_code_formatted_paths_exist():
    """Every repository path the README names in code exists (outputs like build/ are not
    repository paths); docs/ it links to are held to the same rule."""
    paths = code_paths(README) + code_paths((ROOT / "docs" / "contract.md").read_text())
    assert {"configs/cluster.yaml", "configs/demo.yaml", "deploy/spark-submit/submit.sh"} <= set(
        paths)
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"README names missing paths: {missing}"


def test_the_readme_needs_no_file_outside_the_repository():
    for target in [*re.findall(r"\]\(([^)#\s]+)", README), *re.findall(r"`([^`\s]+)`", README)]:
        assert not target.startswith("../"), f"README points outside the repository: {target}"


def test_named_console_commands_are_entry_points_of_the_wheel():
    """Every `hourglass-<job>` command the README names or runs is a console script of the
    package; the one other such name is the prod service principal the bundle looks up."""
    import yaml

    from hourglass.cli import JOBS as CLI_JOBS

    bash = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S))
    named = set(re.findall(r"`(hourglass-[a-z-]+)`", README))
    named |= set(re.findall(r"^(hourglass-[a-z-]+) ", bash, re.M))
    assert {"hourglass-encode-items", "hourglass-sft-train"} <= named
    bundle = yaml.safe_load((ROOT / "deploy" / "databricks.yml").read_text())
    principal = bundle["targets"]["prod"]["variables"]["writer"]["lookup"]["service_principal"]
    assert named - {job.script for job in CLI_JOBS.values()} == {principal}
