"""The package's shape: data flows one way, and the tests say so.

Every import in ``hpsearch/`` (function-level ones included) is an edge between modules; a
package's ``__init__`` is its public face. These fail when a cycle, an import of another
module's private name, or a computation importing presentation comes back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hpsearch"
# What a person reads: nothing that computes may import it.
PRESENTATION = ("hpsearch.report", "hpsearch.dashboard", "hpsearch.cli")
COMPUTATION = ("hpsearch.space", "hpsearch.training", "hpsearch.objectives",
               "hpsearch.optimize", "hpsearch.storage", "hpsearch.analysis", "hpsearch.verify",
               "hpsearch.best", "hpsearch.bias", "hpsearch.replay", "hpsearch.text",
               "hpsearch.settings", "hpsearch.planted", "hpsearch.schema",
               "hpsearch.optuna_private")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every ``from M import name`` / ``import M`` in the file."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
    return [(m, n) for m, n in out if m == "hpsearch" or m.startswith("hpsearch.")]


def edges(module: str) -> set[str]:
    """The hpsearch modules ``module`` depends on (a submodule named in ``from P import m``
    is a dependency on ``P.m``, not on ``P``'s face)."""
    out = set()
    for target, name in imports(MODULES[module]):
        if name is not None and f"{target}.{name}" in MODULES:
            out.add(f"{target}.{name}")
        elif target in MODULES and target != "hpsearch":
            out.add(target)
    out.discard(module)
    return out


GRAPH = {m: edges(m) for m in MODULES}


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_graph_sees_imports() -> None:
    """The checks above are only as good as the graph: it must see the real edges."""
    assert "hpsearch.storage.specs" in GRAPH["hpsearch.storage.open"]
    assert "hpsearch.analysis.study" in GRAPH["hpsearch.analysis"]
    assert "hpsearch.analysis.stats" in GRAPH["hpsearch.analysis.questions"]


@pytest.mark.parametrize("root", [ROOT / "hpsearch", ROOT / "scripts"])
def test_no_private_name_from_another_module(root: Path) -> None:
    bad = []
    for path in root.rglob("*.py"):
        own = module_name(path) if root.name == "hpsearch" else None
        for target, name in imports(path):
            if name and name.startswith("_") and not name.startswith("__") and target != own:
                bad.append(f"{path.relative_to(ROOT)}: from {target} import {name}")
    assert not bad, "\n".join(bad)


def test_computation_never_imports_presentation() -> None:
    bad = [f"{m} imports {n}" for m, deps in GRAPH.items() for n in deps
           if m.startswith(COMPUTATION) and n.startswith(PRESENTATION)]
    assert not bad, "\n".join(bad)


def test_every_subpackage_has_a_public_face() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init.relative_to(ROOT)} says nothing of its package"


PACKAGES = {module_name(p) for p in PACKAGE.rglob("__init__.py")} - {"hpsearch"}


def face_bypasses(module: str, found: list[tuple[str, str | None]]) -> list[str]:
    """The imports of ``module`` that reach below the face of a package it is not in
    (``from hpsearch.storage.specs import mask`` outside ``hpsearch.storage``)."""
    bad = []
    for target, name in found:
        parts = target.split(".")
        crossed = [p for i in range(2, len(parts))
                   if (p := ".".join(parts[:i])) in PACKAGES
                   and module != p and not module.startswith(p + ".")]
        if crossed:
            bad.append(f"{module}: from {target} import {name} (use {crossed[0]}'s face)")
    return bad


# Scripts that time or soak a package's internals, and the modules they reach into.
REACH_IN = {"benchmarks/common.py": {"hpsearch.training.datasets"},
            "benchmarks/fused.py": {"hpsearch.training.fused"},
            "benchmarks/optimize.py": {"hpsearch.optimize.study", "hpsearch.optimize.workers"},
            "soak.py": {"hpsearch.optimize.study", "hpsearch.optimize.workers"}}


def test_other_packages_import_a_package_s_face() -> None:
    """Outside a package only its ``__init__`` names are used: a module may move or split
    without its importers changing. Scripts too, but for the few that time or soak a
    package's internals (``REACH_IN``)."""
    bad = [b for m, path in MODULES.items() for b in face_bypasses(m, imports(path))]
    for path in sorted(SCRIPTS.rglob("*.py")):
        allowed = REACH_IN.get(str(path.relative_to(SCRIPTS)), set())
        bad += [f"{path.relative_to(ROOT)}: {b}" for b in face_bypasses(
            "scripts", [(t, n) for t, n in imports(path) if t not in allowed])]
    assert not bad, "\n".join(sorted(bad))


def test_the_face_check_sees_bypasses() -> None:
    assert face_bypasses("hpsearch.verify.run", [("hpsearch.analysis.stats", "x"),
                                                  ("hpsearch.analysis", "y"),
                                                  ("hpsearch.analysis.seeds", "z")]) != []
    assert len(face_bypasses("hpsearch.verify.run", [("hpsearch.analysis.stats", "x"),
                                                      ("hpsearch.analysis.seeds", "z")])) == 2
    assert face_bypasses("hpsearch.analysis.study", [("hpsearch.analysis.stats", "x"),
                                                      ("hpsearch.analysis.seeds", "z")]) == []
    assert face_bypasses("hpsearch.analysis.study",
                         [("hpsearch.analysis.seeds.paired", "x")]) != []
    assert face_bypasses("hpsearch.cli", [("hpsearch.storage", "mask")]) == []


def test_no_face_shadows_its_own_submodule() -> None:
    """``import hpsearch.training.loop as m`` must give the module: a package's face that
    exported a name equal to one of its submodules would hand out that name instead."""
    for init in PACKAGE.rglob("__init__.py"):
        package = module_name(init)
        subs = {p.stem for p in init.parent.glob("*.py")} | {
            p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file()}
        exported = {name for target, name in imports(init) if name}
        assert not exported & subs, f"{package} exports {exported & subs}, its own submodules"


# ---------------------------------------------------------------------------- scripts, tests

SCRIPTS, TESTS = ROOT / "scripts", ROOT / "tests"


def _top_names(folder: Path) -> set[str]:
    """The names a file in ``folder`` is importable under: its modules and packages."""
    return {p.stem for p in folder.glob("*.py")} | {
        p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}


def _imported_roots(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
    return out


def _path_edits(tree: ast.AST) -> list[int]:
    """Lines that change the import path: ``sys.path.insert/append/...``, ``sys.path = ``,
    pytest's ``syspath_prepend``, ``site.addsitedir``, or loading a file as a module."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            on_sys_path = (isinstance(node.value, ast.Attribute) and node.value.attr == "path"
                           and isinstance(node.value.value, ast.Name)
                           and node.value.value.id == "sys")
            if (on_sys_path and node.attr in ("insert", "append", "extend", "remove")) or \
                    node.attr in ("syspath_prepend", "addsitedir", "spec_from_file_location"):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(ast.unparse(t) == "sys.path" for t in targets):
                lines.append(node.lineno)
    return lines


def test_scripts_and_tests_never_import_each_other_nor_edit_the_import_path() -> None:
    """hpsearch is installed: scripts/ and tests/ import it, not each other. A test runs a
    script as a user does (a subprocess); a script needs nothing from the tests."""
    test_names = _top_names(TESTS) - {"conftest"} | {"tests"}
    script_names = _top_names(SCRIPTS) | {"scripts"}
    assert {"bench", "benchmarks", "soak"} <= script_names and "support" in test_names
    bad = []
    for folder, forbidden in ((SCRIPTS, test_names), (TESTS, script_names)):
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text())
            where = path.relative_to(ROOT)
            own = _top_names(path.parent) if folder == SCRIPTS else set()
            bad += [f"{where} imports {name}" for name in
                    sorted(_imported_roots(tree) & forbidden - own)]
            bad += [f"{where}:{line} edits the import path" for line in _path_edits(tree)]
    assert not bad, "\n".join(bad)


def test_the_import_path_check_sees_edits() -> None:
    tree = ast.parse("import sys\nsys.path.insert(0, 'x')\nmonkeypatch.syspath_prepend('y')\n"
                     "sys.path = []\nimportlib.util.spec_from_file_location('m', 'm.py')\n")
    assert sorted(_path_edits(tree)) == [2, 3, 4, 5]
    assert _imported_roots(ast.parse("from support.postgres import X\nimport bench")) == {
        "support", "bench"}


# ---------------------------------------------------------------------------- stored keys

# Where a string names a stored key: the key argument of these calls (its position), ...
_SETTERS = {"set_user_attr": 0, "set_system_attr": 0, "set_trial_user_attr": 1,
            "set_trial_system_attr": 1, "set_study_user_attr": 1, "set_study_system_attr": 1,
            "save_result": 1}
_ATTRS = ("user_attrs", "system_attrs")


def _raw_keys(tree: ast.AST) -> list[int]:
    """Lines where a stored key is written as a string literal: the key of an attr setter
    or of ``save_result``; ``x.user_attrs.get("k")``, ``x.user_attrs["k"]``, ``"k" in
    x.user_attrs``; a literal key of a ``user_attrs={...}`` argument; any string that starts
    with ``verify:`` or is one of hpsearch's namespaced keys."""
    from hpsearch import schema

    def literal(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) or \
            isinstance(node, ast.JoinedStr)

    def on_attrs(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr in _ATTRS or \
            isinstance(node, ast.Name) and node.id in _ATTRS

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            at = _SETTERS.get(name or "")
            if at is not None and len(node.args) > at and literal(node.args[at]):
                lines.append(node.lineno)
            if isinstance(func, ast.Attribute) and func.attr == "get" and on_attrs(func.value) \
                    and node.args and literal(node.args[0]):
                lines.append(node.lineno)
            for kw in node.keywords:
                if kw.arg in _ATTRS and isinstance(kw.value, ast.Dict) and any(
                        literal(k) for k in kw.value.keys):
                    lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and on_attrs(node.value) and literal(node.slice):
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and literal(node.left) and any(
                isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
                on_attrs(c) for c in node.comparators):
            lines.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value.startswith(schema.VERIFY)
                or node.value in (schema.TRAINING, schema.HEARTBEAT, schema.NOTE)):
            lines.append(node.lineno)
    return lines


def test_stored_keys_are_named_by_schema_only() -> None:
    """Every key a study or trial stores is written and read through ``hpsearch.schema``:
    a literal elsewhere is a second owner of the fact, invisible to imports."""
    bad = []
    for folder in (PACKAGE, SCRIPTS):
        for path in sorted(folder.rglob("*.py")):
            if path == PACKAGE / "schema.py":
                continue
            bad += [f"{path.relative_to(ROOT)}:{line}"
                    for line in _raw_keys(ast.parse(path.read_text()))]
    assert not bad, "stored keys as literals (use hpsearch.schema):\n" + "\n".join(bad)


def test_the_stored_keys_check_sees_literals() -> None:
    code = ("trial.set_user_attr('config', 1)\nstorage.set_trial_user_attr(t, 'run', 2)\n"
            "t.user_attrs.get('arms')\nt.user_attrs['design']\n'x' in t.system_attrs\n"
            "save_result(study, f'verify:{q}', v, s)\ncreate_trial(user_attrs={'worker': 1})\n"
            "key.startswith('verify:')\nuser_attrs.get('dataset')\n"
            "trial.set_user_attr(schema.CONFIG, 'text')\nt.user_attrs.get(schema.ARMS)\n")
    assert sorted(set(_raw_keys(ast.parse(code)))) == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_schema_and_settings_are_leaves() -> None:
    """Every layer reads them (the CLI at start-up too): they import nothing heavy."""
    assert GRAPH["hpsearch.schema"] == set(), GRAPH["hpsearch.schema"]
    assert GRAPH["hpsearch.settings"] <= {"hpsearch.errors"}, GRAPH["hpsearch.settings"]
