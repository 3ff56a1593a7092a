"""What labels cost a probe: `trio-monitor run --once` over the same loopback farm,
with and without labels on every target, runs interleaved, CPU per probe compared.

Labels are added to probe lines by the JSON-lines writer (from the config; probers
never see them), so their cost is that of encoding them, once a line:

    .venv/bin/python bench/labels.py --targets 2000 --repeats 7

Prints each run and the medians, and how much of the difference is loading the config
(parsing and checking the labels, once per run: measured in this process, the best of
3); all traffic goes to the farm on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from procs import Children, raise_nofile_limit, workdir_for
from scenario import running_farm, trio_monitor_script
from targets import HEALTHY, generate, write_toml

from trio_monitor import load_config

# what a fleet might carry: [monitor] defaults and a few of the target's own
MONITOR_LABELS = {"env": "prod", "region": "eu-west-1"}
TARGET_LABELS = {"team": "payments", "tier": "1", "service": "checkout-api"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7, help="runs of each (%(default)s)")
    parser.add_argument("--workdir", type=Path, help="keep configs and outputs here")
    args = parser.parse_args()
    raise_nofile_limit()
    children = Children()
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    try:
        with (
            workdir_for(args.workdir, "labels-") as workdir,
            running_farm(children, args.targets, workdir) as farm,
        ):
            targets = generate(args.targets, farm.ports, farm.closed, HEALTHY, seed=1)
            monitor = {"concurrency": 500, "per_host": 500, "retries": 0, "timeout": "10s"}
            configs = {
                "without": (monitor, {}),
                "with": (monitor | {"labels": MONITOR_LABELS}, {"labels": TARGET_LABELS}),
            }
            for name, (section, per_target) in configs.items():
                write_toml(workdir / f"{name}.toml", targets, section, False, per_target)
            load = {name: _load_cpu(workdir / f"{name}.toml") for name in configs}
            for rep in range(args.repeats):
                order = ["without", "with"] if rep % 2 == 0 else ["with", "without"]
                for name in order:
                    argv = [trio_monitor_script(), "run", "--once", "-q"]
                    argv += ["-c", str(workdir / f"{name}.toml")]
                    out = workdir / f"{name}-{rep}.jsonl"
                    usage = children.run(argv, out, out.with_suffix(".err"), 120)
                    if usage.exit_code != 0:
                        raise SystemExit(f"{name} #{rep + 1}: exit code {usage.exit_code}")
                    cpu[name].append(usage.cpu_s)
                    print(f"#{rep + 1} {name:>7} labels: CPU {usage.cpu_s:.2f} s", flush=True)
    finally:
        children.end_all()
    base, labelled = (statistics.median(cpu[k]) for k in ("without", "with"))
    spread = statistics.stdev(cpu["without"])  # how much runs of the same config differ
    per_probe = 1e6 / args.targets
    print(
        f"median CPU: without {base:.3f} s ({base * per_probe:.0f} us/probe), "
        f"with {labelled:.3f} s ({labelled * per_probe:.0f} us/probe): "
        f"{(labelled - base) * per_probe:+.1f} us/probe; standard deviation of the runs "
        f"without labels {spread * per_probe:.1f} us/probe"
    )
    extra = load["with"] - load["without"]
    print(
        f"loading the config: without {load['without']:.3f} s, with {load['with']:.3f} s: "
        f"{extra * per_probe:+.1f} us/target, once a run; the rest, per probe: "
        f"{(labelled - base - extra) * per_probe:+.1f} us"
    )


def _load_cpu(path: Path) -> float:
    """CPU seconds load_config takes on the file, the best of 3."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        load_config(path)
        best = min(best, time.process_time() - started)
    return best


if __name__ == "__main__":
    sys.exit(main())
