"""The layers of DESIGN.md, checked on the source: imports only go down, and no module imports
itself back through others (function-level imports included; package faces excluded)."""
import ast
import os
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"probvae": "probvae", "probvae.models": "models", "probvae.inference": "inference",
            "probvae.applications": "applications"}
#: the four layers, bottom up: a module may import only from its own layer or below
LAYERS = [
    ("parts", ["probvae/backends/", "probvae/networks/", "probvae/distributions/",
               "probvae/registry.py", "probvae/data/", "probvae/priors.py", "probvae/posteriors.py",
               "probvae/likelihoods/", "probvae/batch.py", "probvae/outputs.py",
               "probvae/plots.py", "probvae/memory.py"]),
    ("models", ["models/"]),
    ("inference", ["inference/"]),
    ("applications", ["applications/", "probvae/__main__.py"]),
]


def layer_of(path):
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(path == p or path.startswith(p) for p in prefixes):
            return i
    return None


def module_file(mod):
    """The file of project module ``mod``; None for a package face or anything else."""
    for pkg in sorted(PACKAGES, key=len, reverse=True):
        if mod == pkg or mod.startswith(pkg + "."):
            rest = mod[len(pkg):].lstrip(".").replace(".", "/")
            base = os.path.join(PACKAGES[pkg], rest) if rest else PACKAGES[pkg]
            return base + ".py" if (ROOT / (base + ".py")).is_file() else None
    return None


def import_graph():
    files = sorted(str(p.relative_to(ROOT)) for top in PACKAGES.values()
                   for p in (ROOT / top).rglob("*.py"))
    edges = defaultdict(set)
    for path in files:
        if path.endswith("__init__.py"):
            continue
        parts = path[:-3].split("/")
        dotted = next(k for k, v in PACKAGES.items() if v == parts[0]) + "." + ".".join(parts[1:])
        for node in ast.walk(ast.parse((ROOT / path).read_text(), path)):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = dotted.split(".")[:-node.level]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                mods = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for m in mods:
                f = module_file(m)
                if f and f != path:
                    edges[path].add(f)
    return files, edges


def test_every_module_has_a_layer():
    files, _ = import_graph()
    unplaced = [f for f in files if not f.endswith("__init__.py") and layer_of(f) is None]
    assert not unplaced, f"modules outside every layer of tests/test_layers.py: {unplaced}"


def test_imports_only_go_down():
    _, edges = import_graph()
    upward = sorted(f"{a} (layer {LAYERS[layer_of(a)][0]}) imports {b} "
                    f"(layer {LAYERS[layer_of(b)][0]})"
                    for a in edges for b in edges[a] if layer_of(b) > layer_of(a))
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    _, edges = import_graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            strong(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_check_can_fail():
    """The layer map really orders things: inference sits above models, apps above both."""
    assert layer_of("inference/fit.py") > layer_of("models/vae.py") > layer_of("probvae/priors.py")
    assert layer_of("applications/cli/train.py") > layer_of("inference/fit.py")


def test_the_folders_are_the_layers():
    """Models, inference and the applications each have a folder at the root of the tree, and
    nothing of a layer lives in another's folder (``probvae/__main__.py`` is only the command's
    entry point)."""
    tops = {"models": "models/", "inference": "inference/", "applications": "applications/"}
    for name, prefixes in LAYERS[1:]:
        strays = [p for p in prefixes if not p.startswith(tops[name]) and p != "probvae/__main__.py"]
        assert not strays, f"layer {name} has modules outside {tops[name]}: {strays}"
    files, _ = import_graph()
    assert all(layer_of(f) == 0 for f in files
               if f.startswith("probvae/") and f not in ("probvae/__main__.py", "probvae/__init__.py")
               and not f.endswith("/__init__.py"))


def test_no_two_modules_share_a_name():
    """A module's name says which one it is: no two files of the package are called alike
    (package faces, and the ``base.py`` / ``common.py`` that name a role inside their own
    sub-package, excepted). ``inference/impute.py`` and the imputation estimator were once both
    ``impute.py``."""
    files, _ = import_graph()
    seen = defaultdict(list)
    for f in files:
        name = f.rsplit("/", 1)[-1]
        if name not in ("__init__.py", "base.py", "common.py"):
            seen[name].append(f)
    assert not {k: v for k, v in seen.items() if len(v) > 1}
