"""Imports point down the layering: nets <- models <- jobs, data and metrics below the jobs. Every import
of every module is read from its source (the lazy ones inside functions too), so a new upward import fails here."""

from __future__ import annotations

import ast
import glob
import os

import pytest

from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "lightning_gen")
#: the command line, the Python API and the jobs: the top, imported by nothing below
ENTRY = ("cli", "lightning_cli", "api", "jobs", "sample", "evaluate", "sweep")
#: for each folder (or module), the parts of the package it must never import
FORBIDDEN = {
    "nets": ("models", "data", "metrics", "checkpoints", "callbacks", "guards", *ENTRY),
    "models": ("data", "metrics", "checkpoints", "callbacks", *ENTRY),
    "data": ("models", "checkpoints", "callbacks", *ENTRY),
    "metrics": ("models", "callbacks", *ENTRY),
    "checkpoints": ("models", "nets", "data", "metrics", "callbacks", *ENTRY),
    "losses": ("models", "nets", "data", "metrics", "checkpoints", "callbacks", *ENTRY),
    "scaling": ("models", "nets", "data", "metrics", "checkpoints", "callbacks", *ENTRY),
}


def imported(path: str) -> set[str]:
    """The ``lightning_gen`` submodules a file imports (top level or inside functions), as ``a.b`` paths."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    package = os.path.relpath(os.path.dirname(path), REPO).replace(os.sep, ".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n[len("lightning_gen.") :] for n in names if n.startswith("lightning_gen.")}


def part_of(path: str) -> str:
    rel = os.path.relpath(path, PACKAGE)
    return rel.split(os.sep)[0].removesuffix(".py")


MODULES = sorted(
    os.path.relpath(p, REPO)
    for p in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True)
    if part_of(p) in FORBIDDEN
)


def test_the_layered_parts_are_found():
    parts = {part_of(os.path.join(REPO, m)) for m in MODULES}
    assert parts == set(FORBIDDEN)
    assert "lightning_gen/metrics/callback.py" in MODULES and "lightning_gen/nets/classifier.py" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_no_import_points_up(module):
    part = part_of(os.path.join(REPO, module))
    upward = sorted(name for name in imported(os.path.join(REPO, module)) if name.split(".")[0] in FORBIDDEN[part])
    assert upward == [], f"{module} ({part}) imports {upward}: move the shared piece down, or the importer up"


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    import tests.test_layering as layering

    path = tmp_path / "lightning_gen" / "metrics" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text("def f():\n    from lightning_gen.models import GAN\n\n\nfrom . import reference\n")
    monkeypatch.setattr(layering, "REPO", str(tmp_path))
    assert {"models", "models.GAN", "metrics", "metrics.reference"} <= layering.imported(str(path))
