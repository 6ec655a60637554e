"""The layering of ARCHITECTURE.md, enforced: every ``import`` inside
dmwsi/ (module level or inside a function) is read with ``ast`` and checked
against the table below, and packages must not import each other in a
cycle. A new module belongs to a layer the moment it exists (an unplaced
module fails the test), so the rule outlives the issue that made it."""
import ast
from pathlib import Path

import pytest

import dmwsi

PACKAGE_DIR = Path(dmwsi.__file__).parent

# (module prefix, layer), most specific prefix first wins.
PLACEMENT = [
    ("dmwsi.cli", "entry"), ("dmwsi.host", "entry"), ("dmwsi.runtime", "entry"), ("dmwsi.bounds", "entry"),
    ("dmwsi.client", "soap-client"),
    ("dmwsi.wsi", "soap-edge"),
    ("dmwsi.push", "consumer-edge"),
    ("dmwsi.security", "security"),
    ("dmwsi.dm.server", "dm-edge"), ("dmwsi.dm.delivery", "dm-edge"),
    ("dmwsi.jobs", "domain"), ("dmwsi.authz", "domain"), ("dmwsi.aliases", "domain"),
    ("dmwsi.dm", "protocol"),
    ("dmwsi.store", "store"),
    ("dmwsi.sim", "simulator"),
    ("dmwsi.records", "model"), ("dmwsi.errors", "model"), ("dmwsi.selector", "model"),
    ("dmwsi.contract", "model"), ("dmwsi.config", "model"), ("dmwsi.resources", "model"),
    ("dmwsi.tls", "model"), ("dmwsi", "model"),
]

# layer -> the layers it may import (besides itself).
MAY_IMPORT = {
    "entry": {"soap-edge", "consumer-edge", "security", "dm-edge", "domain", "protocol", "store", "simulator",
              "soap-client", "model"},
    "soap-client": {"model"},       # zeep clients of our endpoint: the CLI's and the simulated fleet's
    "soap-edge": {"security", "domain", "protocol", "store", "model"},
    "consumer-edge": {"security", "store", "model"},
    "security": {"model"},
    "dm-edge": {"protocol", "model"},
    "domain": {"protocol", "store", "model"},
    "protocol": {"model"},
    "store": {"model"},
    "simulator": {"protocol", "soap-client", "model"},   # a device, and its registration by SOAP
    "model": set(),
}

# Only the two edges speak SOAP through spyne (issue 9).
SPYNE_LAYERS = {"soap-edge"}


def layer_of(module):
    for prefix, layer in PLACEMENT:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def modules():
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports_of(module, path):
    """(imported module, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, node.lineno
            for alias in node.names:          # "from dmwsi.dm import trigger" imports dmwsi.dm.trigger
                yield f"{base}.{alias.name}", node.lineno


def dmwsi_edges():
    known = dict(modules())
    for module, path in known.items():
        for target, line in imports_of(module, path):
            if target.split(".")[0] == "spyne":
                yield module, path, line, "spyne"
            elif target.startswith("dmwsi"):
                # "from pkg import name": only a real module counts as an edge to it
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                yield module, path, line, target


def test_every_module_has_a_layer():
    unplaced = [m for m, _ in modules() if layer_of(m) is None]
    assert not unplaced


def test_no_import_runs_up_or_across_the_layers():
    wrong = []
    for module, path, line, target in set(dmwsi_edges()):
        here = layer_of(module)
        if target == "spyne":
            if here not in SPYNE_LAYERS:
                wrong.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} {module} ({here}) imports spyne")
            continue
        there = layer_of(target)
        if there != here and there not in MAY_IMPORT[here]:
            wrong.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} {module} ({here}) -> {target} ({there})")
    wrong.sort()
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def package_of(module):
    parts = module.split(".")
    return ".".join(parts[:2])


def test_packages_import_each_other_without_cycles():
    graph = {}
    for module, _path, _line, target in dmwsi_edges():
        if target == "spyne":
            continue
        a, b = package_of(module), package_of(target)
        if a != b and b != "dmwsi":
            graph.setdefault(a, set()).add(b)
    cycles = _cycles(graph)
    assert not cycles, f"package import cycles: {cycles}"


def _cycles(graph):
    """Strongly connected components of more than one package (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("source, expected", [
    ("from dmwsi.wsi.faults import DmwsiFault\n", "dmwsi.wsi.faults"),
    ("def f():\n    from dmwsi.jobs import submit\n", "dmwsi.jobs.submit"),
])
def test_the_walker_sees_module_and_function_level_imports(tmp_path, source, expected):
    """The checker must not be blind: imports inside functions count too."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert expected in {t for t, _ in imports_of("dmwsi.store.probe", path)}
    assert layer_of("dmwsi.store.probe") == "store" and "soap-edge" not in MAY_IMPORT["store"]
