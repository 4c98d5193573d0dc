"""The stack's modules import each other one way only, counting imports inside functions too (they were
in a cycle: services/stack.py and services/dispatcher_client.py imported each other)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK_MODULES = {"services.stack", "services.stack_daemon", "services.stack_parts", "services.dispatcher_client",
                 "services.ray_client", "services.backends", "services.health", "services.processes",
                 "services.file_lock", "services.private_files", "shared.config", "shared.artifacts"}


def _graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for folder in ("cli", "services", "shared", "workers") for p in (ROOT / folder).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _reaches(graph, start, goal) -> bool:
    seen, todo = set(), list(graph[start])
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


def test_stack_modules_are_in_no_import_cycle():
    full = _graph()
    assert STACK_MODULES <= set(full)
    graph = {m: full[m] & STACK_MODULES for m in STACK_MODULES}
    assert "services.dispatcher_client" in graph["services.stack"]  # the edge that stays
    cycles = sorted(m for m in STACK_MODULES if _reaches(graph, m, m))
    assert cycles == [], f"in an import cycle: {cycles}"
