"""The package's import graph keeps its rooms apart (the rule is in `texrnet_jax/__init__.py`).

Every import counts, also those inside functions: flows import libraries, libraries never import flows; data and
losses never import the models; prediction and evaluation never import training or the optimizer; nothing under
`models/` mentions a platform; `resample` and `constants` are leaves.
"""

from __future__ import annotations

import ast
import io
import pathlib
import re
import tokenize

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "texrnet_jax"

FLOWS = {"texrnet_jax.train", "texrnet_jax.evaluate", "texrnet_jax.predict", "texrnet_jax.cli",
         "texrnet_jax.weak_labels.label_flow"}
DATA_AND_LOSSES = {"texrnet_jax.preprocessing", "texrnet_jax.input_pipeline", "texrnet_jax.losses",
                   "texrnet_jax.box_losses", "texrnet_jax.metrics"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the texrnet_jax modules it imports (anywhere in its source)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_graph_sees_every_module():
    graph = _graph()
    assert {"texrnet_jax.train", "texrnet_jax.models.layers", "texrnet_jax.xla_cpu.conv"} <= set(graph)
    assert "texrnet_jax.optim" in graph["texrnet_jax.train"]  # the parser finds imports


@pytest.mark.parametrize("flow", ["texrnet_jax.predict", "texrnet_jax.evaluate"])
def test_prediction_and_evaluation_never_reach_training(flow):
    reached = _reachable(_graph(), flow)
    assert not reached & {"texrnet_jax.train", "texrnet_jax.optim"}, sorted(reached)


def test_data_and_losses_never_import_the_models():
    graph = _graph()
    for name in DATA_AND_LOSSES:
        reached = _reachable(graph, name)
        assert not any(m.startswith("texrnet_jax.models") for m in reached), (name, sorted(reached))


def test_libraries_never_import_flows():
    graph = _graph()
    for name, deps in graph.items():
        if name not in FLOWS:
            assert not deps & FLOWS, (name, sorted(deps & FLOWS))


def test_leaves_import_no_other_module_of_the_package():
    graph = _graph()
    for leaf in ("texrnet_jax.resample", "texrnet_jax.constants"):
        assert graph[leaf] == set(), (leaf, graph[leaf])


def test_models_carry_no_platform_logic():
    """No platform named anywhere (comments and docstrings included), no device or mesh query in the code."""
    platforms = re.compile(r"platform|\b(cpu|gpu|tpu|cuda)s?\b|xla:", re.IGNORECASE)
    queries = re.compile(r"device|mesh|shard|platform|backend", re.IGNORECASE)
    for path in (PACKAGE / "models").glob("*.py"):
        source = path.read_text()
        for number, line in enumerate(source.splitlines(), 1):
            if line.startswith("from texrnet_jax.xla_cpu"):  # the functions the forms are called through
                continue
            assert not platforms.search(line), f"{path.name}:{number}: {line.strip()}"
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and not source.splitlines()[token.start[0] - 1].startswith("from "):
                assert not queries.search(token.string), f"{path.name}:{token.start[0]}: {token.line.strip()}"
