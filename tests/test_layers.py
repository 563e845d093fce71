"""The import graph of dsprep, built from the source (every import, at module level or inside a function, and the
imports the registries make by name): no circle anywhere, and each layer imports only the layers below it."""
import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dsprep"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str, path: Path):
    """The dsprep modules ``name`` imports (anywhere in the file)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            # "from pkg import name": the submodule pkg.name when there is one, else pkg itself
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


def hidden_imports():
    """Imports made by name: the format registry and the command table."""
    from dsprep.cli import COMMANDS
    from dsprep.formats import FORMATS
    edges = {("dsprep.formats", m) for m in FORMATS.values()}
    edges |= {("dsprep.cli", f"dsprep.commands.{m}") for m, _ in COMMANDS.values()}
    return edges


def graph():
    g = {name: imports_of(name, path) for name, path in MODULES.items()}
    for a, b in hidden_imports():
        assert b in MODULES, f"{a} names {b}, which does not exist"
        g[a].add(b)
    return g


def test_the_graph_sees_function_level_and_named_imports():
    g = graph()
    assert "dsprep.formats.common" in g["dsprep.formats.voc"]       # module level
    assert "dsprep.formats.vocmasks" in g["dsprep.formats.voc"]     # at the end of the module
    assert "dsprep.pack.reader" in g["dsprep.formats.packed"]       # inside load()
    assert "dsprep.formats.voc" in g["dsprep.formats"]              # by name, in the registry
    assert "dsprep.commands.tile" in g["dsprep.cli"]                # by name, in the command table


def test_no_import_circle():
    g = graph()
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == "open":
                cycle = stack[stack.index(m):] + [m]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n)


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "dsprep"


# who may import whom: each layer lists the layers it may use (besides itself)
BASE = {"core", "geometry", "inputs", "images", "libjpeg", "outputs", "pickles", "pngenc", "rasters", "report", "signals", "parallel",
        "splits", "datapaths", "packcheck", "rle"}
ALLOWED = {
    "geometry": set(),
    "core": {"geometry"},
    "formats": BASE,
    "dataset": BASE | {"formats"},
    "ops": BASE | {"formats", "dataset", "jobs", "ops"},
    "evaluation": BASE | {"formats", "dataset", "ops"},
    "pack": BASE | {"formats", "dataset", "jobs", "ops"},
    "jobs": BASE | {"formats", "dataset", "ops", "evaluation", "pack"},
    "review": BASE | {"formats", "dataset", "ops", "evaluation"},
}


# the packed format reads packed files with the pack package's reader (which imports only the base layer)
EXCEPTIONS = {("dsprep.formats.packed", "dsprep.pack.reader")}


def test_layers_import_only_downwards():
    bad = []
    g = graph()
    assert g["dsprep.pack.reader"] <= {f"dsprep.{m}" for m in BASE}
    for a, targets in g.items():
        layer = _layer(a)
        if layer not in ALLOWED:
            continue
        for b in targets:
            other = _layer(b)
            if other != layer and other not in ALLOWED[layer] | {"dsprep"} and (a, b) not in EXCEPTIONS:
                bad.append(f"{a} -> {b}")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def test_format_modules_never_import_the_registry_the_loader_or_each_other():
    g = graph()
    formats = set(importlib.import_module("dsprep.formats").FORMATS.values())
    for name in formats:
        assert not g[name] & {"dsprep.formats", "dsprep.dataset"}, name
        # what formats share lives in formats.common / spec / shapes / yamlsub / jsonpos; YOLO-OBB and YOLO-seg are
        # YOLO's variants
        variants = ("dsprep.formats.yolo_obb", "dsprep.formats.yolo_seg")
        assert not (g[name] & formats) - ({"dsprep.formats.yolo"} if name in variants else set()), name


def test_click_only_in_the_command_line():
    for name, path in MODULES.items():
        if name == "dsprep.cli" or name.startswith("dsprep.commands"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        used |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "click" not in used, name


def test_long_modules_say_why():
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > 600:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            assert "Why one module" in doc, f"{name}: {lines} lines, and its docstring does not say why (add a " \
                                            f"'Why one module:' paragraph, or split it)"
