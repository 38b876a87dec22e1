"""No import cycle among the engine's modules (DESIGN rule 8), function-level imports included.

Lazy imports keep torch and TRL out of ``import alignlab``; they must not hide a loop. Packages count
as modules (their ``__init__``), and the methods package imports every method module (discovery), so
``x -> alignlab.methods -> a method module -> x`` is a cycle too. The UI packages are front ends and
are left out, as is the CLI.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "alignlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")
            if not {"ui", "cli"} & set(p.relative_to(ROOT).parts) and p.name != "__main__.py"}


def import_graph() -> dict[str, set[str]]:
    modules = engine_modules()

    def owner(name: str) -> str | None:
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = anchor + ("." + base if base else "")
                names = [f"{base}.{alias.name}" for alias in node.names]  # owner() falls back to base
            for name in names:
                target = owner(name) if name.startswith("alignlab") else None
                if target and target != mod:
                    deps.add(target)
        graph[mod] = deps
    # The methods package imports each of its modules by discovery, not by an import statement.
    graph["alignlab.methods"] |= {m for m in modules if m.startswith("alignlab.methods.")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each back edge gives one)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_engine_has_no_import_cycle():
    assert [" -> ".join(c) for c in cycles(import_graph())] == []


def test_the_check_sees_a_cycle_through_a_function_level_import():
    graph = import_graph()
    assert "alignlab.models" in graph["alignlab.reference"]
    graph["alignlab.models"] = graph["alignlab.models"] | {"alignlab.reference"}  # as a lazy import would add
    found = [cycle for cycle in cycles(graph) if set(cycle) == {"alignlab.models", "alignlab.reference"}]
    assert len(found) == 1 and len(found[0]) == 3 and found[0][0] == found[0][-1]  # a -> b -> a, from either end
