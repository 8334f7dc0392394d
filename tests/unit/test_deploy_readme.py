"""README.md and docs/ stay true: the README stays a short newcomer's page listing every job,
every worked example parses into its job's typed config, and every path, link and command they
name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
PAGES = {"README.md": README, **{f"docs/{n}": t for n, t in DOCS.items()}}
JOBS = sorted(p.stem for p in (ROOT / "jobs").glob("*.py"))
MAX_README_LINES = 300


def cli_jobs():
    from hourglass.cli import JOBS as CLI_JOBS

    return CLI_JOBS


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(job, argv) of every line of a page's bash blocks that runs a job: its console command
    (`hourglass-<job>`, `hourglass-sft-launch` for sft_train), `jobs/<job>.py` or
    `submit.sh <job>`."""
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))
    lines = re.sub(r"\\\n\s*", " ", blocks).splitlines()  # join continued lines
    runners = [(f"{job.script} ", name) for name, job in cli_jobs().items()]
    runners += [("hourglass-sft-launch ", "sft_train")]
    runners += [(f"jobs/{j}.py ", j) for j in JOBS] + [(f"submit.sh {j} ", j) for j in JOBS]
    found = []
    for line in lines:
        line = line.split("  #")[0]
        for runner, job in runners:
            if runner in line:
                found.append((job, shlex.split(line.split(runner, 1)[1])))
    return found


def test_readme_is_a_short_page_with_the_two_commands_and_every_job():
    assert len(README.splitlines()) <= MAX_README_LINES
    assert "make demo" in README and "make test" in README and "make test-fast" in README
    for job in JOBS:
        assert f"| `{job}` |" in README, f"README's jobs table lacks {job}"
    for page in ("contract.md", "jobs.md", "deploy.md", "benchmarks.md"):
        assert f"(docs/{page})" in README


def test_worked_examples_parse_into_each_jobs_config(monkeypatch):
    monkeypatch.chdir(ROOT)  # examples use paths relative to the checkout
    examples = [ex for text in PAGES.values() for ex in commands(text)]
    assert {"pipeline", "evaluate", "sft_train"} <= {job for job, _ in examples}
    for job, argv in examples:
        argv = [a for a in argv if "<" not in a and "…" not in a]  # placeholders
        cli_jobs()[job].parse(argv)  # raises ConfigError naming the key


@pytest.mark.parametrize("page", sorted(PAGES))
def test_links_and_images_exist(page):
    """Relative links and images (not demo outputs a reader has yet to make) name real files."""
    base = ROOT if page == "README.md" else ROOT / "docs"
    targets = re.findall(r"\]\(([^)#\s]+)", PAGES[page])
    local = [t for t in targets if "://" not in t and not t.startswith("demo-output/")]
    missing = [t for t in local if not (base / t).exists()]
    assert not missing, f"{page} links to missing files: {missing}"
    if page == "README.md":
        assert "docs/images/hourglass-flow.png" in local


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
    """Every repository path the pages name in code exists (outputs like build/ are not
    repository paths)."""
    paths = [p for text in PAGES.values() for p in code_paths(text)]
    assert {"configs/cluster.yaml", "configs/demo.yaml", "deploy/spark-submit/submit.sh"} <= set(
        paths)
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"the docs name missing paths: {missing}"


def test_the_readme_needs_no_file_outside_the_repository():
    for target in [*re.findall(r"\]\(([^)#\s]+)", README), *re.findall(r"`([^`\s]+)`", README)]:
        assert not target.startswith("../"), f"README points outside the repository: {target}"


def test_named_console_commands_are_entry_points_of_the_wheel():
    """Every `hourglass-<name>` command the pages name or run is a console script of the
    package; the one other such name is the prod service principal the bundle looks up."""
    from importlib.metadata import entry_points

    import yaml

    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    named = set()
    for text in PAGES.values():
        bash = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))
        named |= set(re.findall(r"`(hourglass-[a-z-]+)", text))
        named |= set(re.findall(r"(?:^|\s|/)(hourglass-[a-z-]+) ", bash, re.M))
    assert {"hourglass-pipeline", "hourglass-sft-launch"} <= named
    bundle = yaml.safe_load((ROOT / "deploy" / "databricks.yml").read_text())
    principal = bundle["targets"]["prod"]["variables"]["writer"]["lookup"]["service_principal"]
    assert named - scripts <= {principal}, named - scripts
