"""The folders are the architecture (docs/architecture.md, "Modules"): which
folder may import which, and which may import a framework, read from the
source of every module, Python and JavaScript."""

import ast
import os
import re

import pytest

import tensorboard_nnviz

PACKAGE = os.path.dirname(tensorboard_nnviz.__file__)
FRONTEND = os.path.join(os.path.dirname(PACKAGE), "frontend")

# folder → the folders its modules may import ("" is the package's top level:
# __init__, version and the thin public entry points torch, lightning, transformers,
# plugin).
MAY_IMPORT = {
    "core": {"core"},
    "record": {"core", "record"},
    "serve": {"core", "serve"},
    "cli": {"core", "record", "serve", "cli", ""},
    "": {"", "core", "record", "serve", "cli"},
}
THIN = {"__init__", "version", "torch", "lightning", "transformers", "plugin"}
FRAMEWORKS = {"keras", "tensorflow", "tf_keras", "torch", "jax", "lightning", "pytorch_lightning",
              "transformers", "accelerate"}
TENSORBOARDS_TF = "tensorboard.compat.tf"  # TensorFlow, when installed


def _python_modules():
    """(folder, module name, path) of every module of the package."""
    found = []
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d in MAY_IMPORT and d]
        rel = os.path.relpath(folder, PACKAGE)
        group = "" if rel == "." else rel
        found += [(group, f[:-3], os.path.join(folder, f)) for f in files if f.endswith(".py")]
    return sorted(found)


MODULES = _python_modules()


def _imports(path):
    """Every module name the file imports, at module level or in a function."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # from tensorboard_nnviz import x; from tensorboard.compat import tf
            names.update(node.module + "." + a.name for a in node.names)
    return names


def _folder_of(name):
    """The folder of an import `tensorboard_nnviz.<...>`: core, record,
    serve, cli, or "" for the top level."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else ""


def test_the_top_level_holds_only_the_thin_entry_points():
    top = {name for group, name, _ in MODULES if group == ""}
    assert top == THIN, "modules belong in core/, record/, serve/ or cli/: %s" % sorted(top - THIN)
    for group in ("core", "record", "serve", "cli"):
        assert os.path.isfile(os.path.join(PACKAGE, group, "__init__.py"))


@pytest.mark.parametrize("group,module,path", MODULES, ids=["%s/%s" % m[:2] for m in MODULES])
def test_imports_follow_the_folder_rules(group, module, path):
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "tensorboard_nnviz":
            target = _folder_of(name)
            assert target in MAY_IMPORT[group], "%s/%s imports %s (%s/)" % (group, module, name, target)
        if parts[0] in FRAMEWORKS or name == TENSORBOARDS_TF:
            # The recorders import their framework; the thin public entry
            # points re-export them. Nothing else does.
            assert group == "record" or (group == "" and module in {"torch", "lightning"}), (
                "%s/%s imports %s" % (group, module, name))


def test_serve_and_core_never_import_the_training_side():
    for group, module, path in MODULES:
        if group in ("serve", "core"):
            assert not any(_folder_of(n) == "record" for n in _imports(path)
                           if n.startswith("tensorboard_nnviz.")), (group, module)


# --- the panel ---------------------------------------------------------------------

JS_MAY_IMPORT = {"model": {"model"}, "data": {"model", "data"}, "view": {"model", "view"}}
JS_IMPORT = re.compile(r"""(?:from\s+|import\s*\(\s*)['"]([^'"]+)['"]""")
DOM = re.compile(r"\b(document|window|HTMLElement|HTMLCanvasElement)\b")


def _js_modules():
    found = []
    for folder, _, files in os.walk(FRONTEND):
        rel = os.path.relpath(folder, FRONTEND)
        found += [("" if rel == "." else rel, os.path.join(folder, f)) for f in files if f.endswith(".js")]
    return sorted(found)


JS_MODULES = _js_modules()


def test_the_panel_is_in_its_folders():
    top = {os.path.basename(p) for g, p in JS_MODULES if g == ""}
    assert top == {"index.js", "app.js"}
    assert {g for g, _ in JS_MODULES} == {"", "model", "data", "view"}


@pytest.mark.parametrize("group,path", [m for m in JS_MODULES if m[0]],
                         ids=[os.path.relpath(p, FRONTEND) for g, p in JS_MODULES if g])
def test_panel_imports_follow_the_folder_rules(group, path):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for target in JS_IMPORT.findall(source):
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
        assert os.path.isfile(resolved), (path, target)
        folder = os.path.relpath(os.path.dirname(resolved), FRONTEND)
        assert folder in JS_MAY_IMPORT[group], "%s imports %s" % (os.path.relpath(path, FRONTEND), target)
    if group == "model":
        # model/ is pure (node tests it): no DOM, no fetch.
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
        assert not DOM.search(code) and "fetch(" not in code, os.path.relpath(path, FRONTEND)
