"""Imports go one way (docs/layout.md): device/ imports nothing of ours, and the auditor's
side (cloud/audit) and the witness (cloud/witness) use only formats — device/, gateway/,
the log (cloud/log) and the contracts' pure layer (cloud/contracts) — never the services,
storage or API they are meant to check independently."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("device", "gateway", "cloud.log", "cloud.contracts")
# Start-up plumbing every `pharmasync` command shares, with no ledger state in it: the
# parser and its argument types, the aiohttp server logger, key files.
SHARED = ("cloud.startup", "cloud.httplog", "cloud.keys")
ALLOWED = {
    "device": ("device",),
    "cloud/audit": ("cloud.audit", *FORMATS),
    "cloud/witness": ("cloud.witness", *FORMATS, *SHARED),
}


def _ours(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a module of ours (device, gateway, cloud) in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in ("device", "gateway", "cloud"):
                found.append((node.lineno, name))
    return found


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_a_folder_imports_only_what_its_layer_may(folder: str) -> None:
    prefixes = ALLOWED[folder]
    wrong = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for line, name in _ours(path):
            # `from cloud import startup` names the package and the module: judge the module.
            if name in ("cloud", "gateway", "device"):
                continue
            if not _allowed(name, prefixes):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert wrong == [], f"want only {', '.join(prefixes)}"
