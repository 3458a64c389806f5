"""The layers import downwards only, and the server and the hosts meet in
``onestack.hostlink`` (docs/architecture.md).

Every module's imports are read with ``ast`` (top-level and inside functions, including
``if TYPE_CHECKING:`` blocks: a type-only import is still a dependency on the other
side's names).
"""

from __future__ import annotations

import ast
from pathlib import Path

import onestack

ROOT = Path(onestack.__file__).parent

#: Package -> the onestack packages its modules may not import.
FORBIDDEN = {
    "drivers": {"services", "api", "agent", "db", "assembly", "cli", "dashboard"},
    "services": {"drivers", "agent", "api", "assembly", "cli", "dashboard"},
    "agent": {"services", "api", "db", "assembly", "cli", "dashboard"},
    "hostlink": {"services", "api", "agent", "drivers", "db", "assembly", "cli",
                 "dashboard"},
    "api": {"drivers", "agent", "db.migrations", "assembly", "cli"},
    "db": {"services", "api", "agent", "drivers", "hostlink", "assembly", "cli"},
    "common": {"services", "api", "agent", "drivers", "db", "hostlink", "assembly", "cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" \
        else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # ``from onestack import drivers``: the names are modules too.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _layer_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "onestack" or len(parts) < 2:
        return None
    return parts[1]


def _violations() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        layer = _layer_of(_module_name(path))
        forbidden = FORBIDDEN.get(layer or "")
        if not forbidden:
            continue
        for line, name in _imports(path):
            target = name.split(".")[1:] if name.startswith("onestack.") else []
            for rule in forbidden:
                rule_parts = rule.split(".")
                if target[:len(rule_parts)] == rule_parts:
                    found.append(f"{path.relative_to(ROOT.parent)}:{line}: {layer} imports "
                                 f"{name}")
    return sorted(set(found))


def test_layers_import_downwards_only() -> None:
    assert _violations() == []


def test_the_checker_sees_imports() -> None:
    """The reader finds absolute, relative and in-function imports."""
    reconciler = _imports(ROOT / "agent" / "reconciler.py")
    assert any(name.startswith("onestack.hostlink") for _, name in reconciler)
    assert any(name.startswith("onestack.drivers") for _, name in reconciler)
    services = _imports(ROOT / "services" / "hosts" / "service.py")
    assert any(name.startswith("onestack.services.compute") for _, name in services)
