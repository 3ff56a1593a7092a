"""The garbage-collector policy of `trio-monitor run` (trio_monitor/_gc.py): start-up
frozen once every plan is prepared, raised thresholds; the library itself sets none."""

from __future__ import annotations

import gc

import pytest
from factories import config_doc, write_config

from trio_monitor import _gc
from trio_monitor.cli import common
from trio_monitor.cli.main import main
from trio_monitor.probes.http import HttpPlan


@pytest.fixture
def restored_gc():
    """The policy is process-wide: give the test process its own back."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_a_run_freezes_its_start_up_and_raises_the_thresholds(tmp_path, monkeypatch, restored_gc):
    out = tmp_path / "out"
    frozen: list[tuple[int, int]] = []  # (plans alive, output bytes) at each freeze
    freeze = gc.freeze

    def spy() -> None:
        plans = sum(isinstance(o, HttpPlan) for o in gc.get_objects())
        frozen.append((plans, out.stat().st_size if out.exists() else 0))
        freeze()

    monkeypatch.setattr(_gc.gc, "freeze", spy)
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.1:1/{i}"} for i in range(3)]
    path = write_config(tmp_path, config_doc(*targets, monitor={"retries": 0}))
    assert main(["run", "--once", "-q", "-c", str(path), "-o", str(out)]) == 1
    # frozen once the plans exist, before any probe (then again on the way out)
    assert len(frozen) == 2
    plans, written = frozen[0]
    assert plans >= 3
    assert written == 0
    assert out.stat().st_size > 0
    assert gc.get_threshold() == _gc.THRESHOLDS


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_config_is_loaded_with_the_collector_paused(tmp_path, monkeypatch, restored_gc, command):
    enabled: list[bool] = []
    load = common.load_config

    def spy(path):
        enabled.append(gc.isenabled())
        return load(path)

    monkeypatch.setattr(common, "load_config", spy)
    path = write_config(tmp_path, config_doc({"url": "http://127.0.0.1:1/"}))
    argv = [command, "-c", str(path)] + (
        ["--once", "-q", "-o", str(tmp_path / "out")] * (command == "run")
    )
    main(argv)
    assert enabled == [False]
    assert gc.isenabled()  # and back on after
