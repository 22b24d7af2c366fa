"""The package edges: what the Lambda zip, the shared core and the node may import.

``sam deploy`` zips ``functions/`` as it is, and Lambda provides only the standard library,
boto3 and the Powertools layer; the shared core (``functions/mapokezi``) is imported by the media
node and the CLI too, so it may not depend on Powertools or on any Lambda package.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
LAMBDA_PACKAGES = {p.name for p in FUNCTIONS.iterdir() if (p / "__init__.py").exists()}
#: The runtime's boto3 and the Powertools layer, which ships its tracer extra (the X-Ray SDK).
LAMBDA_RUNTIME = {"boto3", "botocore", "aws_lambda_powertools", "aws_xray_sdk"}
#: Imports made only on paths Lambda never takes: profile files are YAML on the operator's side
#: (the CLI, the console, the local stack); Lambda stores and loads profiles as JSON.
OPERATOR_ONLY = {("functions/mapokezi/profiles.py", "yaml")}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Top-level module names imported anywhere in `path`, except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(FUNCTIONS), ids=lambda p: str(p.relative_to(ROOT)))
def test_lambda_code_imports_only_what_lambda_provides(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | LAMBDA_RUNTIME | LAMBDA_PACKAGES
    relative = str(path.relative_to(ROOT))
    foreign = [
        f"{line}: {name}"
        for line, name in _imports(path)
        if name not in allowed and (relative, name) not in OPERATOR_ONLY
    ]
    assert not foreign, f"{path.relative_to(ROOT)} imports what the Lambda zip lacks: {foreign}"


@pytest.mark.parametrize(
    "path", _modules(FUNCTIONS / "mapokezi"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_shared_core_imports_no_lambda_code(path: Path) -> None:
    forbidden = (LAMBDA_PACKAGES - {"mapokezi"}) | {"aws_lambda_powertools"}
    found = [f"{line}: {name}" for line, name in _imports(path) if name in forbidden]
    assert not found, f"{path.relative_to(ROOT)} imports Lambda-only code: {found}"


def test_the_edges_are_checked_where_they_matter() -> None:
    # The checks above would pass vacuously if the folders moved.
    assert {"mapokezi", "serverless", "voice", "cdr", "events"} <= LAMBDA_PACKAGES
    assert any(name == "aws_lambda_powertools" for _, name in _imports(FUNCTIONS / "voice/app.py"))
