"""No import cycles among the product packages, and no benchmark or test helper inside them.

The graph (:mod:`tests.import_graph`) is built with ``ast``: lazy imports inside functions
count, ``if TYPE_CHECKING:`` imports do not.
"""

from __future__ import annotations

import ast

from tests.import_graph import ROOT, find_cycles, import_graph, imported, modules, without_package_parents


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from common import settings\n"
        "def f():\n    from gateway.connection import Connection\n"
        "from . import bus\n"
    )
    names = imported(tree, "common.x", is_package=False)
    assert "gateway.connection" in names
    assert "common.bus" in names
    assert "common.settings" not in names


def test_no_import_cycles() -> None:
    graph = without_package_parents(import_graph())
    assert graph.get("gateway.service"), "the graph is empty: wrong root?"
    assert find_cycles(graph) == []


def test_no_product_module_imports_benchmarks_or_tests() -> None:
    offenders = {
        name: sorted(m for m in imported(ast.parse(path.read_text(encoding="utf-8")), name,
                                          path.name == "__init__.py")
                     if m.split(".")[0] in {"benchmarks", "tests"})
        for name, path in modules().items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_benchmarks_or_test_helpers_inside_product_packages() -> None:
    misplaced = [
        str(path.relative_to(ROOT))
        for path in modules().values()
        if path.stem.startswith("bench") or path.stem in {"testing", "fakes", "conftest"}
    ]
    assert misplaced == []


def test_the_client_package_stands_alone() -> None:
    """speech_client is for any client: it must not pull in the services (numpy, Redis, models)."""
    import sys

    names = set()
    for name, path in modules().items():
        if name.split(".")[0] == "speech_client":
            names |= {m.split(".")[0] for m in imported(ast.parse(path.read_text(encoding="utf-8")), name,
                                                         path.name == "__init__.py")}
    outside = {n for n in names if n not in sys.stdlib_module_names and n not in {"__future__", "speech_client"}}
    assert outside == {"pydantic", "websockets"}
