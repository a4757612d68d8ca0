"""The layers of pyproject.toml's [tool.fqrnn.layers]: no module imports from a layer above its own."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "models", "cells", "flows", "benchmarks")
LAYERS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["fqrnn"]["layers"]["order"]


def layer_of(module: str) -> int | None:
    """The layer of a project module: that of the longest listed prefix (None: not a project module)."""
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (index, prefix)
    return best[0] if best else None


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones included, relative ones resolved."""
    package = module_name(path, root).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward_imports(root: Path = ROOT) -> list[str]:
    upward = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            here = layer_of(module_name(path, root))
            for line, target in imports(path, root):
                there = layer_of(target)
                if here is not None and there is not None and there > here:
                    upward.append(f"{path.relative_to(root)}:{line} imports {target}")
    return upward


def test_every_import_goes_down_or_stays_in_its_layer():
    upward = upward_imports()
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_every_module_has_a_layer():
    assert all(
        layer_of(module_name(path)) is not None for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    )


def test_an_upward_import_is_caught(tmp_path):
    """The check itself: a foundation module importing a flow, or a cell importing a pass, is reported."""
    (tmp_path / "compiler" / "foundation").mkdir(parents=True)
    (tmp_path / "compiler" / "foundation" / "x.py").write_text("def f():\n    from flows.verify import verify\n")
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "y.py").write_text("from . import bias\nfrom compiler.ir import IR\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "z.py").write_text("from compiler.ir import IR\nimport models.network\n")
    assert sorted(upward_imports(tmp_path)) == [
        "cells/y.py:2 imports compiler.ir.IR",
        "compiler/foundation/x.py:2 imports flows.verify.verify",
    ]
