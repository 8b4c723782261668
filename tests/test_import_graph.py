"""benchmarks/import_graph.py's figures on a tiny package made for the purpose: a circle of
three, a circle only late imports make, a TYPE_CHECKING import, a long function."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import import_graph as ig  # noqa: E402

LATE = """\
from typing import TYPE_CHECKING

from ..a import thing

if TYPE_CHECKING:
    from fakepkg.e import Tool
else:
    from fakepkg import base


def helper() -> int:
    return thing()


def late() -> object:
    import json

    from fakepkg import e

    return json, e, base
"""

LONG = (
    "from typing import TYPE_CHECKING\n\nfrom fakepkg import VALUE\n"
    "from fakepkg.sub.d import helper\n\n\n"
    "class Tool:\n    def run(self) -> float:\n        import math\n\n        return math.pi\n\n\n"
    "def long_one() -> int:\n"
    "    if TYPE_CHECKING:\n        from fakepkg import c\n"
    "    total = VALUE + helper()\n" + "    total += 1\n" * 65 + "    return total\n"
)

PROPERTY = """\
import fakepkg.c


class Box:
    @property
    def size(self) -> int:
        return 1

    @size.setter
    def size(self, value: int) -> None:
        pass
"""

FILES = {
    "__init__.py": "from fakepkg.base import VALUE\n",
    "base.py": "VALUE = 1\n" + "# filler\n" * 509,
    "a.py": "from fakepkg import b\n\nfrom . import base\n\n\n"
    "def thing() -> int:\n    return base.VALUE + len(dir(b))\n",
    "b.py": PROPERTY,
    "c.py": "from .a import thing\n",
    "e.py": LONG,
    "sub/__init__.py": "",
    "sub/d.py": LATE,
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "fakepkg"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_modules_folders_and_lines(package: Path) -> None:
    result = ig.analyse(package)
    assert result["modules"] == 8
    assert result["folders"] == {
        "fakepkg": {
            "modules": 6,
            "lines": 1 + 510 + 7 + PROPERTY.count("\n") + 1 + LONG.count("\n"),
        },
        "fakepkg/sub": {"modules": 2, "lines": LATE.count("\n")},
    }
    assert result["module_table"]["fakepkg.base"]["lines"] == 510
    assert result["largest_module"] == {"name": "fakepkg.base", "lines": 510}
    assert result["modules_over_max_lines"] == 1


def test_module_level_edges_of_every_kind_of_import(package: Path) -> None:
    imports = {name: m["imports"] for name, m in ig.analyse(package)["module_table"].items()}
    assert imports == {
        "fakepkg": ["fakepkg.base"],  # from fakepkg.base import VALUE
        "fakepkg.a": ["fakepkg.b", "fakepkg.base"],  # from fakepkg import b; from . import base
        "fakepkg.b": ["fakepkg.c"],  # import fakepkg.c
        "fakepkg.c": ["fakepkg.a"],  # from .a import thing
        "fakepkg.base": [],
        "fakepkg.e": ["fakepkg", "fakepkg.sub.d"],  # a name of the package's __init__
        "fakepkg.sub": [],
        # from ..a import thing; the else of TYPE_CHECKING runs, its body (fakepkg.e) does not
        "fakepkg.sub.d": ["fakepkg.a", "fakepkg.base"],
    }


def test_circles_back_edges_and_floors(package: Path) -> None:
    result = ig.analyse(package)
    assert result["edges"] == 9
    assert result["circles"] == [["fakepkg.a", "fakepkg.b", "fakepkg.c"]]
    assert result["back_edges"] == 3
    assert result["circle_edges"] == [
        "fakepkg.a -> fakepkg.b",
        "fakepkg.b -> fakepkg.c",
        "fakepkg.c -> fakepkg.a",
    ]
    assert result["dfs_back_edges"] == 1
    assert result["depth_floors"] == 4
    assert result["deepest_path"] == [
        ["fakepkg.e"],
        ["fakepkg.sub.d"],
        ["fakepkg.a", "fakepkg.b", "fakepkg.c"],
        ["fakepkg.base"],
    ]
    floors = {name: m["floor"] for name, m in result["module_table"].items()}
    assert floors["fakepkg.base"] == floors["fakepkg.sub"] == 1
    assert floors["fakepkg.a"] == floors["fakepkg.c"] == floors["fakepkg"] == 2


def test_imports_inside_functions_are_counted_and_make_their_own_circle(package: Path) -> None:
    result = ig.analyse(package)
    assert result["function_imports"] == 3  # json and e in late, math in Tool.run
    assert result["function_imports_own"] == 1
    line = LATE.splitlines().index("    from fakepkg import e") + 1
    assert result["function_imports_own_where"] == [
        f"fakepkg.sub.d:late:{line} from fakepkg import e"
    ]
    assert result["module_table"]["fakepkg.e"]["function_imports"] == 1
    # Two in all: d's module level and the one inside long_one; neither is an edge.
    assert result["type_checking_imports_skipped"] == 2

    late = result["with_function_imports"]
    assert late["edges"] == 10
    assert late["circles"] == [
        ["fakepkg.a", "fakepkg.b", "fakepkg.c"],
        ["fakepkg.e", "fakepkg.sub.d"],
    ]
    assert late["back_edges"] == 5
    assert late["depth_floors"] == 3


def test_longest_function_and_long_ones(package: Path) -> None:
    result = ig.analyse(package)
    # thing, Box.size twice (getter and setter), helper, late, Tool.run, long_one
    assert result["functions"] == 7
    assert result["longest_function"] == {"name": "fakepkg.e:long_one", "lines": 70}
    assert result["functions_over_max_lines"] == 1
    assert result["long_functions"] == [["fakepkg.e:long_one", 70]]


def test_tarjan_is_iterative_and_finds_one_long_circle() -> None:
    size = 5000  # far past Python's recursion limit
    graph = {f"m{i:05d}": {f"m{i + 1:05d}"} for i in range(size)}
    graph[f"m{size:05d}"] = {"m00000"}
    components, back_edges = ig.strongly_connected(graph)
    assert [len(c) for c in components] == [size + 1]
    assert back_edges == 1


def test_json_on_stdout_and_in_the_file(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "results" / "graph.json"
    argv = ["import_graph.py", "--root", str(package), "--json", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    ig.main()
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text(encoding="utf-8"))
    assert printed["circles"] == [["fakepkg.a", "fakepkg.b", "fakepkg.c"]]


def test_the_table_names_the_figures(package: Path) -> None:
    text = ig.table(ig.analyse(package))
    assert "3 modules: fakepkg.a, fakepkg.b, fakepkg.c" in text
    assert "depth: 4 floors (fakepkg.e -> fakepkg.sub.d -> {fakepkg.a" in text
    assert "longest function: fakepkg.e:long_one (70 lines)" in text
