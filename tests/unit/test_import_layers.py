"""The import direction of the package (README "Architecture"): no module imports a layer above
its own, no modules import each other in a cycle, and only the Spark layers import pyspark. Read
from the source (every import statement, also those inside functions and under TYPE_CHECKING),
so a lazy or type-only import cannot hide a backwards dependency or a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "libs" / "hourglass"

# Bottom to top; a module may import its own layer and those below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("hourglass", "hourglass.config", "hourglass.errors", "hourglass.logs",
              "hourglass.resources", "hourglass.sid_tokens", "hourglass.table_refs",
              "hourglass.tracking")),
    ("core", ("hourglass.quant", "hourglass.stats", "hourglass.rewrite", "hourglass.embed",
              "hourglass.sft", "hourglass.decode", "hourglass.search")),
    ("training", ("hourglass.train",)),
    ("evaluation", ("hourglass.evaluation", "hourglass.report", "hourglass.baselines")),
    ("spark", ("hourglass.spark",)),
    ("stages", ("hourglass.stages",)),
    ("entry", ("hourglass.cli", "hourglass.docs", "hourglass.notebook", "hourglass.study")),
]
SPARK_LAYERS = {"spark", "stages", "entry"}

# The one deferred import upwards: `--config s3a://…` is read through the job's Spark session
# (its Hadoop credentials), imported only when a config URI is not a local file.
ALLOWED_UPWARDS = {
    ("hourglass.config", "hourglass.spark.hadoop_files"),
    ("hourglass.config", "hourglass.spark.session"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index of the layer holding `module` (the longest matching prefix wins)."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and to README)"
    return best


def imports_of(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    return files


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the other modules of `modules` it imports}: `from a.b import c` counts as an
    import of a.b, and of a.b.c when that is a module too."""
    return {me: {t for t in imports_of(path) if t in modules and t != me}
            for me, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as [a, b, …, a], or [] when there is none (depth-first)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path.pop())
            elif nxt in path:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in done:
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return []


def test_no_module_imports_a_layer_above_its_own():
    backwards = []
    for path in sources():
        me = module_name(path)
        mine = layer_of(me)
        for target in imports_of(path):
            if target.split(".")[0] != "hourglass" or target == "hourglass.__version__":
                continue
            if (me, target) in ALLOWED_UPWARDS:
                continue
            if not _is_module(target):  # `from hourglass.x import name`: the module is x
                continue
            if layer_of(target) > mine:
                backwards.append(f"{me} ({LAYERS[mine][0]}) imports {target} "
                                 f"({LAYERS[layer_of(target)][0]})")
    assert not backwards, "\n".join(backwards)


def test_no_import_cycles():
    """Modules importing each other (even lazily, even for type hints only) are one module in
    two files: merge them, or move what both need into a module below both."""
    cycle = find_cycle(import_graph({module_name(p): p for p in sources()}))
    assert not cycle, " -> ".join(cycle)


def test_only_the_spark_layers_import_pyspark():
    offenders = [module_name(p) for p in sources()
                 if LAYERS[layer_of(module_name(p))][0] not in SPARK_LAYERS
                 and any(t.split(".")[0] in ("pyspark", "delta") for t in imports_of(p))]
    assert not offenders, offenders


def test_the_checker_sees_a_backwards_import(tmp_path):
    """The rule bites: a stage imported from the core layer is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from hourglass.stages.evaluate import run\n")
    assert "hourglass.stages.evaluate" in imports_of(bad)
    assert layer_of("hourglass.stages.evaluate") > layer_of("hourglass.quant.kernel")


def test_the_checker_sees_a_cycle(tmp_path):
    """The rule bites: a function-local import back into a module that imports this one at
    module level, and one under TYPE_CHECKING, are both cycles."""
    (tmp_path / "a.py").write_text("import pkg.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    from pkg.a import x\n")
    modules = {f"pkg.{n}": tmp_path / f"{n}.py" for n in "abc"}
    assert find_cycle(import_graph(modules)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (tmp_path / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(modules)) == []


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return ((PACKAGE.parent / rel).with_suffix(".py").exists()
            or (PACKAGE.parent / rel / "__init__.py").exists())
