"""The design's import rules, checked on the source (``ast``) and in a Python without torch.

The rules (``DESIGN.md``, "Layout"): imports flow downward only —
``export → train, neutral modules, bundle, data``; ``runtime → dicom_io, data (preprocess,
sliding window), bundle, vocabulary``; ``train → data, metrics``; ``metrics`` → the ground floor
only (numpy, scipy); ``evaluation → metrics, data, dicom_io``; ``data → vocabulary``;
``dicom_io → errors, vocabulary``; ``synth`` (synthetic cases and studies) is imported by the
demo and the CLI only — never by the runtime, export, dicom_io, data or train; no cycles; torch is
never imported when ``glioedge.runtime``, ``glioedge.dicom_io`` or
the shared preprocessing is imported.

Every import statement counts for the layering and the cycles, wherever it is (module level, inside
a function, under ``TYPE_CHECKING``): a lazy import is still a dependency. Only module-level
imports count for "torch reachable at import time".
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "glioedge"

#: Foundation modules every part may import (they import nothing above themselves).
BASE = frozenset({"glioedge", "errors", "vocabulary", "_optional", "config_keys", "fileio", "bundle",
                  "bundle_signing"})
#: Top-level component → the components it may import (besides itself). A component not named
#: here (a new module at the top of the package) is "neutral": runtime and export may import it,
#: and it may import only BASE, data and dicom_io.
ALLOWED: dict[str, frozenset[str]] = {
    "glioedge": frozenset(),
    "errors": frozenset(),
    "vocabulary": frozenset(),
    "_optional": frozenset({"errors"}),
    "config_keys": frozenset({"errors"}),
    "fileio": frozenset(),
    "bundle": frozenset({"glioedge", "errors", "vocabulary", "_optional", "config_keys", "fileio",
                         "bundle_signing"}),
    "bundle_signing": frozenset({"errors", "_optional", "fileio"}),
    "dicom_io": frozenset({"errors", "vocabulary", "fileio"}),
    "data": BASE,
    # metrics: the one torch-free metric implementation (train, benches, evaluate); ground floor only.
    "metrics": BASE,
    # evaluation: `glioedge evaluate` (reads NIfTI folders and DICOM-SEGs, compares, reports).
    "evaluation": BASE | {"metrics", "data", "dicom_io", "progress"},
    "train": BASE | {"data", "metrics"},
    "runtime": BASE | {"dicom_io", "data"},
    "export": BASE | {"train", "data", "dicom_io"},
    # synthetic phantoms, cohorts and DICOM writers: for the demo, the CLI (`glioedge synth`),
    # tests and benches only (named here so that no other component, neutral modules included,
    # may import it: see test_synth_is_below_the_demo_only)
    "synth": BASE | {"data", "dicom_io"},
    "demo": BASE | {"data", "dicom_io", "train", "export", "runtime", "metrics", "synth"},
    "cli": BASE | {"data", "dicom_io", "train", "export", "runtime", "demo", "metrics", "evaluation",
                   "synth"},
}
#: The components that may import ``glioedge.synth`` (everything else may not).
SYNTH_IMPORTERS = frozenset({"synth", "demo", "cli"})
NEUTRAL_IMPORTS = BASE | {"data", "dicom_io"}
MAY_IMPORT_NEUTRAL = frozenset({"runtime", "export", "demo", "cli"})
#: The only parts of ``data`` the runtime may use (the shared preprocessing and its vocabulary).
RUNTIME_DATA = frozenset({"glioedge.data.preprocess", "glioedge.data.sliding_window",
                          "glioedge.data.labels", "glioedge.data.modalities", "glioedge.data.geometry"})

#: Documented, permanent exceptions: (importer, imported module prefix) → why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("glioedge.runtime.backends.torch_backend", "glioedge.train."):
        "the optional PyTorch reference back-end builds the network from a training checkpoint",
}

#: Modules that must import without torch (with all their import-time dependencies).
TORCH_FREE_ROOTS = ("glioedge.runtime", "glioedge.dicom_io", "glioedge.bundle", "glioedge.bundle_signing",
                    "glioedge.vocabulary", "glioedge.metrics", "glioedge.evaluation",
                    *sorted(RUNTIME_DATA))
#: Runtime modules allowed to need torch: the optional torch back-end and its device-side
#: sliding-window accumulator (loaded only by that back-end).
TORCH_OPTIONAL = frozenset({"glioedge.runtime.backends.torch_backend",
                            "glioedge.runtime.backends.torch_window"})


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target``; ``top_level`` is False for imports inside functions/``if``s."""

    source: str
    target: str
    top_level: bool
    line: int


def _module_files() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _module_files()


def _resolve(name: str) -> str | None:
    """The glioedge module that an import of ``name`` loads (the longest known prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> Iterator[Edge]:
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, top_level: bool) -> Iterator[Edge]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _resolve(alias.name) if alias.name.startswith("glioedge") else None
                    if target and target != module:
                        yield Edge(module, target, top_level, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    name = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    name = child.module or ""
                if not name.startswith("glioedge"):
                    continue
                for alias in child.names:
                    target = _resolve(f"{name}.{alias.name}")
                    if target and target != module:
                        yield Edge(module, target, top_level, child.lineno)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                    isinstance(child, ast.If) and _is_type_checking(child)):
                yield from visit(child, False)
            else:
                yield from visit(child, top_level)

    yield from visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)


def _imports_torch_at_top(path: Path) -> bool:
    """Whether the module imports torch at module level (outside functions and TYPE_CHECKING)."""
    def visit(node: ast.AST) -> bool:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import) and any(a.name.split(".")[0] == "torch" for a in child.names):
                return True
            if isinstance(child, ast.ImportFrom) and not child.level and (
                    (child.module or "").split(".")[0] == "torch"):
                return True
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if visit(child):
                return True
        return False

    return visit(ast.parse(path.read_text(encoding="utf-8")))


EDGES: list[Edge] = [e for m, p in sorted(MODULES.items()) for e in _imports(m, p)]


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "glioedge"


def _parents(module: str) -> list[str]:
    """A module's enclosing packages: importing ``a.b.c`` runs ``a/__init__`` and ``a.b/__init__``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def layering_violations(edges: list[Edge]) -> list[str]:
    """Every edge that goes upward or sideways against :data:`ALLOWED` (minus the exceptions)."""
    bad = []
    for e in edges:
        src, dst = _component(e.source), _component(e.target)
        if src == dst:
            continue
        if any(e.source == s and e.target.startswith(t) for s, t in EXCEPTIONS):
            continue
        if src in ALLOWED:
            ok = dst in ALLOWED[src] or (dst not in ALLOWED and src in MAY_IMPORT_NEUTRAL)
        else:  # a neutral module
            ok = dst in NEUTRAL_IMPORTS or dst not in ALLOWED
        if ok and src == "runtime" and dst == "data":
            ok = e.target in RUNTIME_DATA
        if not ok:
            bad.append(f"{e.source} → {e.target} (line {e.line}): {src} may not import {dst}")
    return bad


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in edges:
        # Importing a package's own submodule from its __init__ is how packages re-export; a
        # submodule importing the package it lives in is a cycle and is kept.
        if e.target.startswith(e.source + "."):
            continue
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return cycles


def torch_paths(edges: list[Edge]) -> list[str]:
    """For each torch-free root: an import-time chain that reaches a module importing torch."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in edges:
        if e.top_level:
            graph[e.source].add(e.target)
    for m in MODULES:  # importing a submodule runs its parents' __init__
        graph[m].update(p for p in _parents(m) if p in MODULES and p != m)
    torchy = {m for m, p in MODULES.items() if _imports_torch_at_top(p)}
    roots = [m for m in MODULES for r in TORCH_FREE_ROOTS
             if (m == r or m.startswith(r + ".")) and m not in TORCH_OPTIONAL]
    found = []
    for root in roots:
        prev: dict[str, str | None] = {root: None}
        queue = [root]
        while queue:
            v = queue.pop(0)
            if v in torchy:
                chain = [v]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])  # type: ignore[arg-type]
                found.append(" → ".join(reversed(chain)) + " → torch")
                break
            for w in sorted(graph[v]):
                if w not in prev and w not in TORCH_OPTIONAL:
                    prev[w] = v
                    queue.append(w)
    return found


# -- the rules ----------------------------------------------------------------------------------


def test_the_walk_sees_the_package() -> None:
    # A walk that found nothing would pass everything: check that it sees known edges.
    pairs = {(e.source, e.target) for e in EDGES}
    assert ("glioedge.runtime.segmenter", "glioedge.bundle") in pairs
    assert ("glioedge.train.kd_model", "glioedge.vocabulary") in pairs
    assert len(MODULES) > 80


def test_no_upward_or_sideways_import() -> None:
    assert layering_violations(EDGES) == []


def test_no_import_cycle() -> None:
    assert find_cycles(EDGES) == []


def test_torch_is_not_reachable_at_import_time() -> None:
    assert torch_paths(EDGES) == []


#: Packages whose "May import:" paragraph is written with the move of the synthetic data (issue
#: 21, item 1); remove them from here when it is.
DOCSTRING_PENDING: frozenset[str] = frozenset()


def _may_import(doc: str) -> tuple[set[str], bool, bool] | None:
    """The components a package docstring's "May import:" paragraph names (parenthesised asides
    left out), and whether it says "the ground floor" and "the neutral modules"."""
    paragraph = next((p for p in doc.split("\n\n") if p.lstrip().startswith("May import:")), None)
    if paragraph is None:
        return None
    text = re.sub(r"\([^()]*\)", "", " ".join(paragraph.split()))
    return (set(re.findall(r"``([a-z_]+)``", text)), "the ground floor" in text,
            "the neutral modules" in text)


def docstring_mismatches(modules: dict[str, Path]) -> list[str]:
    """Packages whose docstring lacks a "May import:" paragraph, or whose paragraph disagrees with
    :data:`ALLOWED` (a top-level package: exactly; a subpackage: "what ``<component>`` may",
    then only what that component may import)."""
    bad = []
    for name, path in sorted(modules.items()):
        if path.name != "__init__.py" or name in DOCSTRING_PENDING:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        said = _may_import(doc)
        if said is None:
            bad.append(f"{name}: no 'May import:' paragraph in its docstring")
            continue
        names, floor, neutral = said
        comp = _component(name)
        allowed = ALLOWED.get(comp, NEUTRAL_IMPORTS)
        if name.count(".") <= 1:  # glioedge or a top-level package
            want = (set(allowed - BASE), allowed >= BASE, comp in MAY_IMPORT_NEUTRAL)
            if (names, floor, neutral) != want:
                bad.append(f"{name}: says {sorted(names)}, ground floor {floor}, neutral {neutral}; "
                           f"ALLOWED gives {sorted(want[0])}, ground floor {want[1]}, neutral {want[2]}")
            continue
        if not re.search(rf"May import: what ``{comp}`` may", " ".join(doc.split())):
            bad.append(f"{name}: its 'May import:' paragraph must start with what ``{comp}`` may")
        excepted = {_component(t) for s, t in EXCEPTIONS if s.startswith(name + ".")}
        for other in sorted(names - {comp} - allowed - excepted):
            if other in ALLOWED or comp not in MAY_IMPORT_NEUTRAL:
                bad.append(f"{name}: names ``{other}``, which {comp} may not import")
    return bad


def test_every_package_says_what_it_may_import() -> None:
    assert docstring_mismatches(MODULES) == []


# -- the checks can fail ------------------------------------------------------------------------


def test_checks_catch_a_planted_violation() -> None:
    planted = [
        Edge("glioedge.dicom_io.series", "glioedge.data.labels", True, 1),  # dicom_io → data
        Edge("glioedge.runtime.segmenter", "glioedge.export.pipeline", False, 1),  # runtime → export
        Edge("glioedge.data.preprocess", "glioedge.train.losses", True, 1),  # data → train
        Edge("glioedge.runtime.inference", "glioedge.data.augment", True, 1),  # not shared data
    ]
    assert len(layering_violations(planted)) == len(planted)
    cyclic = [Edge("glioedge.cli", "glioedge.demo", False, 1),
              Edge("glioedge.demo", "glioedge.cli", False, 1)]
    assert find_cycles(cyclic) == [["glioedge.cli", "glioedge.demo"]]
    to_torch = [*EDGES, Edge("glioedge.runtime.postprocess", "glioedge.train.losses", True, 1)]
    assert any(p.startswith("glioedge.runtime.postprocess") for p in torch_paths(to_torch))


def test_docstring_check_catches_a_wrong_paragraph(tmp_path: Path) -> None:
    cases = {
        "glioedge.metrics": '"""Metrics.\n\nMay import: the ground floor, ``train``."""',  # upward
        "glioedge.train": '"""Training.\n\nMay import: ``data``, ``metrics``."""',  # floor unsaid
        "glioedge.export": '"""Export, and nothing about its imports."""',
        "glioedge.runtime.daemon": '"""Daemon.\n\nMay import: what ``runtime`` may: ``export``."""',
    }
    modules = {}
    for name, doc in cases.items():
        path = tmp_path / name / "__init__.py"
        path.parent.mkdir()
        path.write_text(doc + "\n")
        modules[name] = path
    assert len(docstring_mismatches(modules)) == len(cases)


def test_runtime_dicom_io_and_preprocessing_import_with_torch_blocked() -> None:
    """Import every torch-free module in a fresh interpreter where ``import torch`` fails."""
    wanted = sorted(m for m in MODULES for r in TORCH_FREE_ROOTS
                    if (m == r or m.startswith(r + ".")) and m not in TORCH_OPTIONAL
                    and not m.endswith(".__main__"))  # a __main__ runs its command
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, sys

        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        failed = []
        for name in {wanted!r}:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                if "torch" in str(exc):
                    failed.append(f"{{name}}: {{exc}}")
        try:  # the block works: a module that needs torch cannot be imported
            importlib.import_module("glioedge.train.losses")
            failed.append("the torch block did not work: glioedge.train.losses imported")
        except ImportError:
            pass
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr



# -- synthetic data stays out of the product ------------------------------------------------------


def test_synth_is_below_the_demo_only() -> None:
    """Only the demo and the CLI import ``glioedge.synth``; the runtime, export, dicom_io, data
    and train never do, and neither does a neutral module (no exception)."""
    assert ("glioedge.synth.cohort", "glioedge.data.brats") in {(e.source, e.target) for e in EDGES}
    importers = {_component(e.source) for e in EDGES if _component(e.target) == "synth"}
    assert importers <= SYNTH_IMPORTERS
    assert not [(s, t) for s, t in EXCEPTIONS if t.startswith("glioedge.synth")]
    for component in {*ALLOWED, "gpu", "brain_mask_spec"} - SYNTH_IMPORTERS:
        assert "synth" not in ALLOWED.get(component, NEUTRAL_IMPORTS), component
    # dicom_io and data offer no synthetic names any more
    import glioedge.data
    import glioedge.dicom_io

    for package in (glioedge.dicom_io, glioedge.data):
        assert not [n for n in package.__all__ if "synthetic" in n.lower() or n == "StudyInfo"]


@pytest.mark.parametrize("importer", [
    "glioedge.runtime.planted", "glioedge.runtime.daemon.planted", "glioedge.export.planted",
    "glioedge.dicom_io.planted", "glioedge.data.planted", "glioedge.train.planted",
    "glioedge.planted_neutral",
])
def test_a_planted_synth_import_is_caught(tmp_path: Path, importer: str) -> None:
    """A module of the runtime (and the others) that imports glioedge.synth — even lazily, inside a
    function — fails the layering rule; the same source in the demo passes."""
    source = tmp_path / "planted.py"
    source.write_text(textwrap.dedent("""
        from glioedge.errors import InputError


        def case() -> object:
            from glioedge.synth.cohort import make_case
            from glioedge.synth import write_synthetic_series

            return make_case, write_synthetic_series, InputError
    """))
    edges = list(_imports(importer, source))
    assert {e.target for e in edges} >= {"glioedge.synth.cohort", "glioedge.synth"}
    bad = layering_violations(edges)
    assert len(bad) == 2 and all("may not import synth" in b for b in bad), bad
    assert layering_violations(list(_imports("glioedge.demo", source))) == []
    assert layering_violations(list(_imports("glioedge.cli", source))) == []
