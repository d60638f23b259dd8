"""The rooms of the package and the one-way direction of their imports, read from the source:

- the training client (``joulecast/`` outside ``serving/``) imports the standard library and
  itself only, never the serving room or the daemons;
- the serving room imports the client at most, never the daemons;
- no module is past 400 lines in the rooms kept small.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.stack import ROOT

CLIENT = ROOT / "joulecast"
SERVING = CLIENT / "serving"
THIRD_PARTY_CLIENT_OK = {"keras", "lightning", "pytorch_lightning", "transformers", "torch"}
#: imported lazily, where it is used and only then (embedded mode on a GPU machine)
OPTIONAL = {"pynvml"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def client_modules() -> list[Path]:
    return [p for p in CLIENT.rglob("*.py") if SERVING not in p.parents]


def test_the_client_imports_nothing_from_the_serving_room_or_the_daemons():
    for path in client_modules():
        for name in imports(path):
            root = name.split(".")[0]
            assert not name.startswith(
                ("joulecast.serving", "joulecast.exporter", "joulecast.estimator")
            ), f"{path}: {name}"
            if root != "joulecast" and "integrations" not in path.parts:
                assert root in sys.stdlib_module_names | OPTIONAL, f"{path}: {name} is not stdlib"
            elif root != "joulecast":  # a framework callback imports its framework only
                assert root in sys.stdlib_module_names | THIRD_PARTY_CLIENT_OK, f"{path}: {name}"


def test_the_serving_room_imports_neither_daemon():
    for path in SERVING.rglob("*.py"):
        for name in imports(path):
            assert not name.startswith(("joulecast.exporter", "joulecast.estimator")), (
                f"{path}: {name}"
            )


def test_the_serving_room_and_the_client_stay_small():
    for path in [*client_modules(), *SERVING.rglob("*.py")]:
        if path.name == "client.py":
            continue  # the one public class; its helpers live beside it
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines"


def test_the_job_registry_stays_split_along_its_concerns():
    for path in (ROOT / "exporter" / "jobs").glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= 60, f"{path.name}: {node.name} has {length} lines"
