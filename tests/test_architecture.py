"""The module groups of the package __init__'s docstring, and the import
rules between them (docs/architecture.md, "Modules"), read from the source."""

import ast
import os
import re

import pytest

import tensorboard_nnviz

PACKAGE = os.path.dirname(tensorboard_nnviz.__file__)
GROUPS = {
    group: [m.strip() for m in modules.split(",")]
    for group, modules in re.findall(r"^- (\w+): (.+)$", tensorboard_nnviz.__doc__, re.M)
}
MAY_IMPORT = {
    "shared": {"shared"},
    "write": {"shared", "write"},
    "read": {"shared", "read"},
    "tools": {"shared", "write", "read", "tools"},
}
FRAMEWORKS = {"keras", "tensorflow", "tf_keras", "torch", "jax", "lightning"}
TENSORBOARDS_TF = "tensorboard.compat.tf"  # TensorFlow, when installed
GROUP_OF = {m: g for g, modules in GROUPS.items() for m in modules}
MODULES = sorted(f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py") and f != "__init__.py")


def _imports(module):
    """Every module name `module` imports, at module level or in a function."""
    with open(os.path.join(PACKAGE, module + ".py"), encoding="utf-8") as f:
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


def test_every_module_is_in_one_group():
    assert set(GROUPS) == set(MAY_IMPORT)
    listed = [m for modules in GROUPS.values() for m in modules]
    assert len(listed) == len(set(listed)), listed
    missing = set(MODULES) - set(listed)
    assert not missing, ("modules in no group: %s; name them in tensorboard_nnviz/__init__.py's "
                         "docstring and in docs/architecture.md" % sorted(missing))
    assert set(listed) <= set(MODULES), set(listed) - set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_imports_follow_the_group_rules(module):
    group = GROUP_OF.get(module)
    if group is None:
        pytest.fail("%s is in no group (see test_every_module_is_in_one_group)" % module)
    for name in _imports(module):
        parts = name.split(".")
        if parts[0] == "tensorboard_nnviz" and len(parts) > 1:
            assert GROUP_OF[parts[1]] in MAY_IMPORT[group], (
                "%s (%s) imports %s (%s)" % (module, group, parts[1], GROUP_OF[parts[1]]))
        if parts[0] in FRAMEWORKS or name == TENSORBOARDS_TF:
            # The recorders (write) import their framework; nothing else does.
            assert group == "write", "%s (%s) imports %s" % (module, group, name)
