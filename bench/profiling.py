"""A profile of one `trio-monitor run --once`, written to a file docs/benchmarks.md links.

py-spy when it is installed (the bench extra has it): `py-spy record --format raw`,
collapsed stacks that speedscope or flamegraph.pl open, summarised here as self time per
function and per package. Otherwise cProfile, summarised as the top functions by own
time (the stats file's text goes beside the report).
"""

from __future__ import annotations

import pstats
import shutil
import sys
from collections import Counter
from pathlib import Path

from procs import Children
from report import Profile
from scenario import Prepared, trio_monitor_script

RATE = 250  # py-spy samples per second
TOP = 15
PACKAGES = ("trio_monitor", "trio", "httpx", "httpcore", "h11", "httptools", "anyio", "ssl")


def py_spy() -> str | None:
    script = Path(sys.executable).parent / "py-spy"
    return str(script) if script.exists() else shutil.which("py-spy")


def take(children: Children, prepared: Prepared, docs: Path, workdir: Path) -> Profile:
    argv = [trio_monitor_script(), "run", "--once", "-q", "-c", str(prepared.toml)]
    label = prepared.setup.label
    spy = py_spy()
    if spy is not None:
        path = docs / "benchmarks-profile-run.txt"
        record = [spy, "record", "--rate", str(RATE), "--format", "raw", "-o", str(path), "--"]
        children.run([*record, *argv], workdir / "py-spy.out", workdir / "py-spy.err", 300)
        if path.exists() and path.stat().st_size:
            return Profile("py-spy", label, path.name, collapsed_summary(path))
    path = docs / "benchmarks-profile-run.pstats.txt"
    stats = workdir / "run.prof"
    children.run(
        [sys.executable, "-m", "cProfile", "-o", str(stats), *argv],
        workdir / "cprofile.out", workdir / "cprofile.err", 300,
    )  # fmt: skip
    with path.open("w") as f:
        pstats.Stats(str(stats), stream=f).sort_stats("tottime").print_stats(60)
    return Profile("cProfile", label, path.name, pstats_summary(stats))


def _package(frame: str) -> str:
    """'name (path/to/pkg/mod.py:12)' -> the package under site-packages, or the file."""
    where = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    parts = Path(where).parts
    for pkg in PACKAGES:
        if pkg in parts or f"{pkg}.py" in parts:
            return pkg
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return "python stdlib / other" if where else "native / unknown"


def collapsed_summary(path: Path) -> list[str]:
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] += int(count)
        packages[_package(leaf)] += int(count)
    total = sum(own.values()) or 1
    lines = [
        f"{total:,} samples at {RATE}/s. Self time by package (the frame on top of the stack):",
        "",
        "| package | share |",
        "|---|---|",
        *(f"| {pkg} | {n / total:.1%} |" for pkg, n in packages.most_common()),
        "",
        f"Top {TOP} functions by self time:",
        "",
        "| function | share |",
        "|---|---|",
        *(f"| `{fn}` | {n / total:.1%} |" for fn, n in own.most_common(TOP)),
    ]
    return lines


def pstats_summary(stats_path: Path) -> list[str]:
    stats = pstats.Stats(str(stats_path))
    total = stats.total_tt or 1  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]  # type: ignore[attr-defined]
    lines = [
        f"Top {TOP} functions by own time (of {total:.2f} s profiled):",
        "",
        "| function | own s | share |",
        "|---|---|---|",
    ]
    for (file, line, name), (_, _, tottime, _, _) in rows:
        lines.append(
            f"| `{name} ({Path(file).name}:{line})` | {tottime:.3f} | {tottime / total:.1%} |"
        )
    return lines
