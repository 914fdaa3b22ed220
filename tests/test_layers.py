"""Dependencies point one way (docs/architecture.md): every ``mvtrack`` import in a package, at module level or
inside a function, goes to a package listed below it here. Fails naming the file and the import that runs up."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mvtrack"

# package -> the packages it may import (besides itself); leaf utilities (devices, outputs) import nothing of mvtrack
ALLOWED = {
    "geometry": {"_lazy"},
    "devices": set(),
    "_lazy": set(),
    "api": {"defaults", "devices", "pipelines", "runners"},
    "defaults": set(),
    "config": set(),  # the config checker: the standard library and yaml only
    "outputs": set(),
    "evaluation": {"geometry"},
    "data": {"geometry", "viz.video", "outputs"},  # video files are read and written by viz.video, a leaf of viz
    "viz": {"geometry", "data"},
    "scenes": {"geometry", "data", "_lazy"},
    "models": {"geometry", "defaults", "config"},
    "tracking": {"geometry", "data", "models", "evaluation", "config"},
    "pipelines": {"geometry", "data", "models", "defaults"},
    "training": {"geometry", "data", "models", "tracking", "scenes", "outputs", "defaults", "devices", "config"},
    "runners": {"geometry", "data", "models", "tracking", "pipelines", "training", "evaluation", "scenes", "viz",
                "outputs", "defaults", "devices", "config", "_lazy"},
}


def _imports(path: Path, package: str):
    """(line, dotted module) of every import of mvtrack in ``path``, relative imports resolved."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts  # ("mvtrack", package, ..., module)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("mvtrack."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(parts[: len(parts) - node.level])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.startswith("mvtrack."):
                names = [f"{module}.{a.name}" for a in node.names] if module.count(".") == 1 else [module]
                yield from ((node.lineno, m) for m in names)


def test_dependencies_point_one_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        files = sorted((SRC / package).rglob("*.py")) if (SRC / package).is_dir() else [SRC / f"{package}.py"]
        for path in files:
            for line, module in _imports(path, package):
                target = module.split(".")[1:]
                if target[0] == package or target[0] in allowed or ".".join(target[:2]) in allowed:
                    continue
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)
