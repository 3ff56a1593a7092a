"""tests/factories.py: its defaults are records and configs the package accepts."""

from __future__ import annotations

import json

from factories import (
    T0,
    alert_event,
    config_doc,
    make_config,
    make_target,
    probe_result,
    round_summary,
    write_config,
)

from trio_monitor import ErrorKind, load_config
from trio_monitor._records import to_line


def test_probe_defaults_follow_ok():
    up, down = probe_result(), probe_result("db", ok=False)
    assert (up.target, up.url, up.ts, up.status, up.latency_ms, up.error) == (
        "api",
        "http://api.test/",
        T0,
        200,
        12.5,
        None,
    )
    assert (down.url, down.status, down.latency_ms, down.error) == (
        "http://db.test/",
        None,
        None,
        ErrorKind.CONNECT,
    )
    assert probe_result(ok=False, status=503, latency_ms=80.0).status == 503


def test_records_are_schema_1_json_lines():
    for record, kind in (
        (probe_result(bytes=3), "probe"),
        (alert_event("up", "web", downtime_s=60.0), "alert"),
        (round_summary(skipped=2), "round"),
    ):
        line = json.loads(to_line(record))
        assert (line["schema"], line["type"]) == (1, kind)


def test_configs_from_a_dict_from_toml_text_and_from_a_file(tmp_path):
    doc = config_doc({"name": "a", "url": "http://127.0.0.1:9/"}, monitor={"interval": "5s"})
    text = '[monitor]\ninterval = "5s"\n[[targets]]\nname = "a"\nurl = "http://127.0.0.1:9/"\n'
    from_dict, from_text = make_config(doc), make_config(text)
    assert from_dict.targets == from_text.targets
    assert from_dict.monitor.interval == from_text.monitor.interval == 5.0
    for written in (write_config(tmp_path, doc), write_config(tmp_path / "sub", text, "x.toml")):
        assert load_config(written, env={}).targets == from_dict.targets
    assert make_target(slow="1s").slow == 1.0
