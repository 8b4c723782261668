"""Measure digitctl's shape from its source: folders, import graph, circles, floors, sizes.

    python benchmarks/import_graph.py [--root digitctl] [--json] [--out FILE]

Standard library only (``ast``): nothing of the package is imported or run. The figures
issue 34 asks for, before and after the move to subpackages:

- modules per folder and the lines of every module (every line of the file, blank and
  comment lines included);
- the import graph among the package's own modules. An edge is a module-level import
  (``import digitctl.x``, ``from digitctl import x``, ``from digitctl.x import y``,
  relative imports), class bodies and ``try``/``if`` blocks included since they run at
  import time. ``from P import name`` is an edge to ``P.name`` when that is a module,
  else to ``P``. Parent packages that Python imports on the way (``digitctl/__init__``
  before ``digitctl.x``) are not edges, and neither is ``importlib.import_module``;
- imports inside functions (nested ones and methods included), counted per statement:
  all of them, and those that reach one of the package's own modules, listed with
  where they are;
- circles: the strongly connected components of more than one module (Tarjan's
  algorithm, iterative). ``back_edges`` is the number of imports with both ends in the
  same circle: those a layering must choose from to remove or turn around (listed as
  ``circle_edges``). ``dfs_back_edges``, the imports that close a loop on the path of one
  depth-first search (modules and imports visited in name order), is given as well:
  removing them leaves no circle; it depends on the visiting order and is never larger;
- the depth in floors: the number of components on the longest import path of the
  condensation (a circle is one floor; a module that imports nothing of ours is floor 1);
- circles, back edges and depth once more under ``with_function_imports``, with the
  imports inside functions as edges too: the circles that late imports dodge;
- the largest module and the longest function (``def`` line to last line, its
  docstring included), and how many are over MAX_MODULE_LINES and MAX_FUNCTION_LINES.

Imports under ``if TYPE_CHECKING:`` never run and are skipped (their ``else`` runs and
counts). The table goes to stdout; ``--json`` prints the JSON document instead, and
``--out FILE`` also writes it there.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent / "digitctl"
MAX_MODULE_LINES = 500  # issue 34's targets
MAX_FUNCTION_LINES = 60


@dataclass
class Module:
    """One source file of the package, as its import statements and functions see it."""

    name: str
    path: Path
    folder: str
    lines: int
    imports: set[str] = field(default_factory=set)  # own modules imported at module level
    function_imports: list[dict[str, object]] = field(default_factory=list)
    # (qualified name, lines); a list: a property's getter and setter share a name
    functions: list[tuple[str, int]] = field(default_factory=list)
    type_checking_imports: int = 0


def discover(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package folder ``root``."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known_prefix(name: str, known: set[str]) -> str | None:
    """The longest dotted prefix of ``name`` that is one of the package's modules."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def resolve(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str], root: str
) -> list[str]:
    """The package's own modules one import statement of ``module`` reaches, in order."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            if node.level - 1 >= len(base):
                return []  # beyond the top of the package: fails at run time
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, *([node.module] if node.module else [])])
        else:
            prefix = node.module or ""
        names = [
            f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
            for alias in node.names
        ]
    targets: list[str] = []
    for name in names:
        if name != root and not name.startswith(root + "."):
            continue
        target = _known_prefix(name, known)
        if target is not None and target != module and target not in targets:
            targets.append(target)
    return targets


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Reader(ast.NodeVisitor):
    """Sorts one module's imports into module level and function level, and sizes its
    functions; names are qualified through classes and enclosing functions."""

    def __init__(self, module: Module, is_package: bool, known: set[str], root: str) -> None:
        self.module = module
        self.is_package = is_package
        self.known = known
        self.root = root
        self.scope: list[str] = []
        self.function_depth = 0

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        targets = resolve(node, self.module.name, self.is_package, self.known, self.root)
        if self.function_depth:
            self.module.function_imports.append(
                {
                    "where": f"{self.module.name}:{'.'.join(self.scope)}",
                    "line": node.lineno,
                    "statement": ast.unparse(node),
                    "own": targets,
                }
            )
        else:
            self.module.imports.update(targets)

    visit_Import = _import
    visit_ImportFrom = _import

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.module.type_checking_imports += sum(
                isinstance(n, ast.Import | ast.ImportFrom) for s in node.body for n in ast.walk(s)
            )
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.module.functions.append((".".join(self.scope), node.end_lineno - node.lineno + 1))
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef


def read_modules(root: Path) -> dict[str, Module]:
    """Every module of the package under ``root``, parsed (never imported)."""
    paths = discover(root)
    known = set(paths)
    modules: dict[str, Module] = {}
    for name, path in paths.items():
        text = path.read_text(encoding="utf-8")
        folder = path.parent.relative_to(root.parent).as_posix()
        module = Module(name, path, folder, len(text.splitlines()))
        reader = _Reader(module, path.name == "__init__.py", known, root.name)
        reader.visit(ast.parse(text, filename=str(path)))
        modules[name] = module
    return modules


def strongly_connected(graph: dict[str, set[str]]) -> tuple[list[list[str]], int]:
    """Tarjan's components of ``graph`` (iterative: no recursion limit), each sorted, in
    reverse topological order (a component comes after every one it imports); and the
    back edges of the same depth-first search (to a module still on its path)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    on_path: set[str] = set()
    components: list[list[str]] = []
    back_edges = 0
    work: list[tuple[str, Iterator[str]]] = []  # the depth-first path, as a call stack would

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        on_path.add(node)
        work.append((node, iter(sorted(graph[node]))))

    for start in sorted(graph):
        if start in index:
            continue
        enter(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    enter(succ)
                    break
                if succ in on_path:
                    back_edges += 1
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                on_path.discard(node)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components, back_edges


def floors(
    graph: dict[str, set[str]], components: list[list[str]]
) -> tuple[dict[str, int], list[list[str]]]:
    """Each module's floor (1 + the highest floor it imports; a circle is one floor) and
    one longest path of components, top floor first."""
    component_of = {m: i for i, members in enumerate(components) for m in members}
    floor: list[int] = []
    below: list[int | None] = []
    for i, members in enumerate(components):  # reverse topological: what it imports is done
        imported = sorted(
            {component_of[t] for m in members for t in graph[m]} - {i},
            key=lambda c: (-floor[c], components[c][0]),
        )
        floor.append(1 + floor[imported[0]] if imported else 1)
        below.append(imported[0] if imported else None)
    chain: list[list[str]] = []
    if components:
        current: int | None = min(
            range(len(components)), key=lambda c: (-floor[c], components[c][0])
        )
        while current is not None:
            chain.append(components[current])
            current = below[current]
    return {m: floor[component_of[m]] for m in graph}, chain


def graph_figures(graph: dict[str, set[str]]) -> tuple[dict[str, object], dict[str, int]]:
    """Circles, back edges and depth of one import graph; and each module's floor."""
    components, dfs_back_edges = strongly_connected(graph)
    circles = sorted((c for c in components if len(c) > 1), key=lambda c: (-len(c), c))
    in_circle = {m: i for i, members in enumerate(circles) for m in members}
    circle_edges = sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if a in in_circle and in_circle[a] == in_circle.get(b)
    )
    floor, chain = floors(graph, components)
    figures = {
        "edges": sum(len(t) for t in graph.values()),
        "circles": circles,
        "back_edges": len(circle_edges),
        "back_edges_counted_as": "imports with both ends in the same circle",
        "circle_edges": [f"{a} -> {b}" for a, b in circle_edges],
        "dfs_back_edges": dfs_back_edges,
        "depth_floors": max(floor.values(), default=0),
        "deepest_path": chain,
    }
    return figures, floor


def analyse(root: Path) -> dict[str, object]:
    """The figures of the package folder ``root`` as one JSON-ready document."""
    modules = read_modules(root)
    graph = {name: set(module.imports) for name, module in modules.items()}
    figures, floor = graph_figures(graph)
    # What the circle would be if nothing were imported late to dodge it.
    every_import = {
        name: graph[name] | {t for i in module.function_imports for t in i["own"]}
        for name, module in modules.items()
    }
    late_figures, _ = graph_figures(every_import)

    folders: dict[str, dict[str, int]] = {}
    for module in modules.values():
        entry = folders.setdefault(module.folder, {"modules": 0, "lines": 0})
        entry["modules"] += 1
        entry["lines"] += module.lines

    function_imports = [i for m in modules.values() for i in m.function_imports]
    own_function_imports = [i for i in function_imports if i["own"]]
    functions = sorted(
        ((f"{m.name}:{q}", n) for m in modules.values() for q, n in m.functions),
        key=lambda item: (-item[1], item[0]),
    )
    by_size = sorted(modules.values(), key=lambda m: (-m.lines, m.name))
    return {
        "root": root.name,
        "modules": len(modules),
        "lines": sum(m.lines for m in modules.values()),
        "folders": dict(sorted(folders.items())),
        **figures,
        "with_function_imports": late_figures,
        "function_imports": len(function_imports),
        "function_imports_own": len(own_function_imports),
        "function_imports_own_where": [
            f"{i['where']}:{i['line']} {i['statement']}" for i in own_function_imports
        ],
        "type_checking_imports_skipped": sum(m.type_checking_imports for m in modules.values()),
        "largest_module": {"name": by_size[0].name, "lines": by_size[0].lines} if by_size else None,
        "modules_over_max_lines": sum(m.lines > MAX_MODULE_LINES for m in modules.values()),
        "max_module_lines": MAX_MODULE_LINES,
        "longest_function": {"name": functions[0][0], "lines": functions[0][1]}
        if functions
        else None,
        "functions": len(functions),
        "functions_over_max_lines": sum(n > MAX_FUNCTION_LINES for _, n in functions),
        "max_function_lines": MAX_FUNCTION_LINES,
        "long_functions": [[name, n] for name, n in functions if n > MAX_FUNCTION_LINES],
        "module_table": {
            m.name: {
                "folder": m.folder,
                "lines": m.lines,
                "floor": floor[m.name],
                "imports": sorted(m.imports),
                "function_imports": len(m.function_imports),
                "function_imports_own": sum(bool(i["own"]) for i in m.function_imports),
            }
            for m in by_size
        },
    }


def _graph_rows(title: str, figures: dict[str, object]) -> list[str]:
    path = " -> ".join(
        "{" + ", ".join(c) + "}" if len(c) > 1 else c[0] for c in figures["deepest_path"]
    )
    rows = [
        f"{title}: {figures['edges']} among our modules",
        f"  circles: {len(figures['circles'])}",
        *(f"    {len(members)} modules: {', '.join(members)}" for members in figures["circles"]),
        f"  back edges (imports inside a circle): {figures['back_edges']}; "
        f"DFS back edges: {figures['dfs_back_edges']}",
        f"  depth: {figures['depth_floors']} floors ({path})",
    ]
    return rows


def table(result: dict[str, object]) -> str:
    """The document as plain text for a terminal."""
    rows = [f"{'folder':24s} {'modules':>7s} {'lines':>7s}"]
    for folder, entry in result["folders"].items():
        rows.append(f"{folder:24s} {entry['modules']:7d} {entry['lines']:7d}")
    rows += ["", f"{'module':32s} {'lines':>6s} {'floor':>5s} {'imports':>7s} {'in defs':>7s}"]
    for name, m in result["module_table"].items():
        rows.append(
            f"{name:32s} {m['lines']:6d} {m['floor']:5d} {len(m['imports']):7d} "
            f"{m['function_imports']:3d} ({m['function_imports_own']:d} own)"
        )
    rows += ["", f"modules: {result['modules']} ({result['lines']} lines)"]
    rows += _graph_rows("module-level imports", result)
    rows += _graph_rows("imports inside functions too", result["with_function_imports"])
    rows.append(
        f"imports inside functions: {result['function_imports']}, "
        f"of our own modules {result['function_imports_own']} (target 0)"
    )
    rows.append(f"TYPE_CHECKING imports skipped: {result['type_checking_imports_skipped']}")
    largest, longest = result["largest_module"], result["longest_function"]
    if largest:
        rows.append(
            f"largest module: {largest['name']} ({largest['lines']} lines); "
            f"over {result['max_module_lines']} lines: {result['modules_over_max_lines']}"
        )
    if longest:
        rows.append(
            f"longest function: {longest['name']} ({longest['lines']} lines); "
            f"over {result['max_function_lines']} lines: {result['functions_over_max_lines']} "
            f"of {result['functions']}"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the package folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    if not (args.root / "__init__.py").is_file():
        parser.error(f"{args.root} is not a package folder (no __init__.py)")
    result = analyse(args.root.resolve())
    document = json.dumps(result, indent=2) + "\n"
    if args.json:
        print(document, end="")
    else:
        print(table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(document, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
