"""The package's import graph: no circles, and the server's heavy dependencies load only
when a server runs."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from factories import probe_result
from servers import closed_port
from test_server import write_history

PACKAGE = Path(__file__).resolve().parent.parent / "trio_monitor"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom, known: set[str]) -> set[str]:
    """The package modules one `from ... import ...` statement loads."""
    package = importer if is_package else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    base = f"{package}.{node.module}" if node.module else package
    if node.level == 0:
        base = node.module or ""
    found = {base} if base in known else set()
    # `from .pkg import module` loads that module too
    found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    return found


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Statements that run on import: module level, not under `if TYPE_CHECKING:`."""
    out: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            out.append(stmt)
        elif isinstance(stmt, ast.If) and "TYPE_CHECKING" not in ast.unparse(stmt.test):
            out.extend(
                s for s in stmt.body + stmt.orelse if isinstance(s, ast.Import | ast.ImportFrom)
            )
        elif isinstance(stmt, ast.Try | ast.With):
            out.extend(s for s in stmt.body if isinstance(s, ast.Import | ast.ImportFrom))
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                edges |= _resolve(name, path.name == "__init__.py", node, known)
            else:
                edges |= {alias.name for alias in node.names if alias.name in known}
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        stack.append(node)
        for nxt in sorted(graph[node]):
            if color[nxt] == GREY:
                return [*stack[stack.index(nxt) :], nxt]
            if color[nxt] == WHITE and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        color[node] = BLACK
        return None

    for node in sorted(graph):
        if color[node] == WHITE and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circles():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    assert "trio_monitor.probes.base" in graph["trio_monitor._config"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.subprocess
def test_the_cli_loads_no_server_dependencies():
    """Start-up of a run without [server] does not pay for starlette, hypercorn or
    prometheus_client, nor for what only some configs or commands need: WebSocket
    targets (trio_websocket), JSON paths in conditions (jsonpath), `import gatus` (yaml),
    browser targets' selector checks (soupsieve, bs4)."""
    heavy = (
        "starlette",
        "hypercorn",
        "prometheus_client",
        "trio_websocket",
        "jsonpath",
        "yaml",
        "soupsieve",
        "bs4",
    )
    code = (
        "import sys, trio_monitor.cli.main; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "-c", "m.toml"],
        ["report", "--jsonl", "empty.jsonl"],
        ["report", "--jsonl", "empty.jsonl", "--format", "html"],
        ["report", "-c", "m.toml", "--format", "json"],
    ],
)
def test_validate_and_report_load_no_server_dependencies(tmp_path, argv):
    """What a command does not need it does not import: `validate` and `report` never
    pay for the server (starlette, hypercorn, prometheus_client, trio_monitor.server),
    nor for name resolution (dnspython) or certificate parsing (cryptography)."""
    (tmp_path / "m.toml").write_text('[[targets]]\nurl = "http://127.0.0.1:1/"\n')
    trio.run(write_history, str(tmp_path / "m.db"), [probe_result("t", ts=time.time())])
    (tmp_path / "empty.jsonl").write_text("")
    code = (
        "import contextlib, io, sys\n"
        "from trio_monitor.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "heavy = ('starlette', 'hypercorn', 'prometheus_client', 'trio_monitor.server',"
        " 'dns.', 'cryptography')\n"
        "print(code, ' '.join(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "0", done.stdout + done.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("target", "loaded"),
    [
        ('url = "http://127.0.0.1:{port}/"', ""),
        ('url = "dns://example.test"\nresolver = "127.0.0.1:{port}"\ntimeout = "0.2s"', "dns"),
    ],
)
def test_a_run_loads_what_its_targets_use(tmp_path, target, loaded):
    """A run pays at start-up only for what it uses: no dnspython without a dns:// target,
    no httpcore nor CA bundle while no notifier sends and no https:// target connects
    (docs/architecture.md, start-up)."""
    (tmp_path / "m.toml").write_text(
        "[storage]\nenabled = false\n[[targets]]\n" + target.format(port=closed_port()) + "\n"
    )
    code = (
        "import sys\n"
        "from trio_monitor.cli.main import main\n"
        "from trio_monitor.net import tls\n"
        "main(['run', '--once', '-q', '-c', 'm.toml', '-o', 'out.jsonl'])\n"
        "heavy = {'dns', 'httpcore'} & {m.partition('.')[0] for m in sys.modules}\n"
        "print(' '.join(sorted(heavy)), len(tls._defaults))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.split() == [*loaded.split(), "0"], done.stdout + done.stderr
