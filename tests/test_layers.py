"""The package's layering, read off its imports (those inside functions included): every
arrow points down the order below, so there are no circles and no arrows back up; the
light layers (label sets, evaluation, export, validation) load neither torch, open3d nor
MinkowskiEngine; every package says in its docstring what lives there; no file is long."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scene_pe"

# Bottom to top: a unit may import only the units before it (scene_pe/__init__.py says why each sits where it does).
ORDER = ["util", "labels", "geometry", "sparse", "superpoints", "evaluation", "export", "data", "model",
         "method", "config", "inference", "train", "experiments", "synthetic", "viz", "predict", "env",
         "viewer", "commands"]
LIGHT = ["scene_pe.labels.label_set", "scene_pe.labels.folder", "scene_pe.labels.scannet200",
         "scene_pe.evaluation.io", "scene_pe.evaluation.instance", "scene_pe.evaluation.semantic",
         "scene_pe.evaluation.uncertainty", "scene_pe.evaluation.errors", "scene_pe.export.submission",
         "scene_pe.export.validate"]
HEAVY = ["torch", "open3d", "MinkowskiEngine"]
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str) -> str | None:
    """The scene_pe module ``name`` refers to (a package's ``__init__`` for a package), else None."""
    while name.startswith("scene_pe"):
        base = ROOT / Path(*name.split("."))
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {m for m in map(resolve, names) if m}
    return out


def unit(module: str) -> str:
    return module.split(".")[1] if "." in module else "scene_pe"


GRAPH = {module_name(p): imports_of(p) - {module_name(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_order_names_every_unit():
    assert {unit(m) for m in GRAPH} - {"scene_pe"} == set(ORDER)


def test_every_import_points_down_the_order():
    up = sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                if unit(b) not in ("scene_pe", unit(a)) and ORDER.index(unit(b)) > ORDER.index(unit(a)))
    assert not up, "arrows back up:\n" + "\n".join(up)


def test_no_circles_between_modules():
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_a_planted_circle_and_an_arrow_up(tmp_path):
    """The two checks above on a graph with one of each (so they can fail)."""
    graph = {"scene_pe.labels.a": {"scene_pe.train.b"}, "scene_pe.train.b": {"scene_pe.labels.a"}}
    assert any(ORDER.index(unit(b)) > ORDER.index(unit(a)) for a, ts in graph.items() for b in ts)
    saved = dict(GRAPH)
    GRAPH.clear()
    GRAPH.update(graph)
    try:
        with pytest.raises(AssertionError, match="scene_pe.labels.a -> scene_pe.train.b -> scene_pe.labels.a"):
            test_no_circles_between_modules()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


def test_light_layers_load_no_heavy_library():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LIGHT)
            + f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    planted = subprocess.run([sys.executable, "-c", code.replace("import sys\n", "import sys\nimport open3d\n")],
                             cwd=ROOT, capture_output=True, text=True, check=True)
    assert planted.stdout.strip() == "open3d"  # the probe sees a heavy import


def test_every_package_says_what_lives_there():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and doc.split("\n\n")[0].strip().endswith("."), f"{init}: no one-sentence docstring"


def test_no_long_file():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tools").rglob("*.py")])
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long
