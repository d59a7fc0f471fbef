"""The package's layout holds: imports run one way, none hides inside a function, and the core stays light."""

import ast
import json
import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "refusal_tokens")

# Tiers, lowest first. A module may import its own tier's modules (inside one subpackage, or the core's modules
# among themselves) and any lower tier; never a higher one, and never a sibling subpackage of the same tier.
TIERS = [
    {"taxonomy", "tokens", "settings", "peft", "utils"},  # the saved contract and its helpers
    {"inference"},
    {"serving"},
    {"data"},
    {"classifiers", "evaluation"},
    {"training"},
    {"recipes"},
    {"cli"},
]
TOP_LEVEL = {"__init__", "testing"}  # the lazy entry point and the test helpers: may import anything, imported by none
THIRD_PARTY_HEAVY = ("trl", "datasets", "wandb", "accelerate", "matplotlib")


def _unit(module: str) -> str:
    """`refusal_tokens.data.synthetic.corpus` -> `data`; `refusal_tokens.tokens` -> `tokens`."""
    return module.split(".")[1]


def _tier(unit: str) -> int:
    return next(i for i, units in enumerate(TIERS) if unit in units)


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.join(PACKAGE, "..")).replace(os.sep, "/")[:-3]
                parts = rel.split("/")
                is_pkg = parts[-1] == "__init__"
                yield path, ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The `refusal_tokens` modules an import statement names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "refusal_tokens"]
    if node.level == 0:
        return [node.module] if (node.module or "").split(".")[0] == "refusal_tokens" else []
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    target = ".".join(base + ([node.module] if node.module else []))
    if node.module is None:  # `from . import x`: each name is a module
        return [f"{target}.{a.name}" for a in node.names]
    return [target]


def _imports():
    """(importing module, imported module, line, at module level) for every import of a package module."""
    for path, module, is_pkg in _modules():
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        top = {id(n) for n in tree.body}
        type_checking = {
            id(sub)
            for n in tree.body
            if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
            for sub in ast.walk(n)
        }
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(module, is_pkg, node):
                    yield module, target, node.lineno, id(node) in top or id(node) in type_checking


def test_imports_run_one_way():
    wrong = []
    for src, dst, line, _ in _imports():
        if src == "refusal_tokens" or src == "refusal_tokens.testing":
            continue
        if dst in ("refusal_tokens", "refusal_tokens.testing"):
            wrong.append(f"{src}:{line} imports {dst}, the top of the package")
            continue
        a, b = _unit(src), _unit(dst)
        if a == b or (_tier(a) == 0 and _tier(b) == 0):
            continue
        if _tier(b) >= _tier(a):
            wrong.append(f"{src}:{line} imports {dst}: {b} is not below {a}")
    assert not wrong, "\n".join(wrong)


def test_no_function_local_imports_of_package_modules():
    hidden = [f"{src}:{line} imports {dst} inside a function" for src, dst, line, top in _imports() if not top]
    assert not hidden, "\n".join(hidden)


def test_the_check_sees_real_imports():
    # a sanity check of the parser above: known edges are found, with the right direction
    edges = {(s, d) for s, d, _, _ in _imports()}
    assert ("refusal_tokens.recipes.base", "refusal_tokens.training.callbacks") in edges
    assert ("refusal_tokens.inference.processor", "refusal_tokens.settings") in edges
    assert ("refusal_tokens.classifiers.keyword", "refusal_tokens.data.synthetic.sources") in edges
    assert all(_unit(d) in set().union(*TIERS) | TOP_LEVEL for _, d, _, _ in _imports())


def _imported_after(code: str) -> dict:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import refusal_tokens",
        "from refusal_tokens import RefusalTokenLogitsProcessor, RefusalSettings, get_taxonomy",
        "from refusal_tokens import load_refusal_model, first_token_probabilities, parse_generations",
        "import refusal_tokens.inference, refusal_tokens.tokens, refusal_tokens.peft",
    ],
)
def test_core_and_inference_path_import_no_training_or_plotting_library(code):
    loaded = _imported_after(code)
    assert not loaded & set(THIRD_PARTY_HEAVY), sorted(loaded & set(THIRD_PARTY_HEAVY))


def test_bare_import_is_lazy():
    loaded = _imported_after("import refusal_tokens")
    assert "torch" not in loaded and "transformers" not in loaded


def test_every_lazy_name_resolves():
    import refusal_tokens

    for name in refusal_tokens.__all__:
        assert getattr(refusal_tokens, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        refusal_tokens.nope  # noqa: B018
