"""`trio-monitor init`: the starter config, and configs made from a list of URLs."""

from __future__ import annotations

import io
import tomllib

import pytest

from trio_monitor import ConfigError, load_config, parse_config
from trio_monitor.cli import main as _cli
from trio_monitor.cli.init import COMMENTS, starter_config, targets_for, urls_from_text


@pytest.fixture
def init(monkeypatch, capsys):
    """Run `trio-monitor init ARGS` in-process. -> (exit code, stdout, stderr)."""
    # main() points the package logger at the current sys.stderr; keep that out of other tests
    monkeypatch.setattr(_cli, "_setup_logging", lambda quiet: None)

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = _cli.main(["init", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_init_writes_a_valid_commented_config(init, tmp_path):
    path = tmp_path / "m.toml"
    code, out, err = init("-o", str(path))
    assert (code, err) == (0, "")
    assert out == f"wrote {path} (example targets); next: trio-monitor run -c {path}\n"
    text = path.read_text(encoding="utf-8")
    assert tomllib.loads(text)["monitor"]["interval"] == "30s"
    config = load_config(path, env={})
    assert [t.name for t in config.targets] == ["example", "example-org"]
    assert config.targets[1].spec.contains == "Example Domain"
    # comments: the header, one beside each key that has one, the commented-out alerts
    assert text.startswith("# trio-monitor configuration.")
    assert f"trio-monitor validate -c {path}\n" in text
    lines = text.splitlines()
    for (section, key), comment in COMMENTS.items():
        assert any(
            line.startswith(f"{key} = ") and line.endswith(f"  # {comment}") for line in lines
        ), (section, key)
    assert "# [[alerts.webhook]]" in lines
    assert "# [[alerts.exec]]" in lines


def test_init_to_stdout(init, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = init("-o", "-")
    assert (code, err) == (0, "")
    assert out == starter_config("monitor.toml")
    assert "trio-monitor run -c monitor.toml" in out
    assert len(parse_config(tomllib.loads(out), env={}).targets) == 2
    assert list(tmp_path.iterdir()) == []


def test_starter_config_without_urls_is_stable():
    assert starter_config("a.toml") == starter_config("a.toml")
    assert tomllib.loads(starter_config("a.toml")) == tomllib.loads(starter_config("b.toml"))


URL_LIST = """\
# production sites
example.com

   https://example.org/status   # the status page
http://127.0.0.1:8080/health/
\t
example.com/          # same host again
www.example.com
https://example.com/#top
"""


def test_init_from_a_url_list(init, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(URL_LIST, encoding="utf-8")
    path = tmp_path / "m.toml"
    code, out, err = init("--from", str(urls), "-o", str(path))
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {path} (6 targets);")
    assert tomllib.loads(path.read_text(encoding="utf-8"))["targets"] == [
        {"name": "example.com", "url": "https://example.com"},
        {"name": "example.org/status", "url": "https://example.org/status"},
        {"name": "127.0.0.1:8080/health", "url": "http://127.0.0.1:8080/health/"},
        {"name": "example.com-2", "url": "https://example.com/"},
        {"name": "www.example.com", "url": "https://www.example.com"},
        {"name": "example.com-3", "url": "https://example.com/#top"},
    ]
    config = load_config(path, env={})
    assert config.monitor.interval == 30.0
    assert len(config.targets) == 6


def test_init_from_stdin(init):
    code, out, err = init("--from", "-", "-o", "-", stdin="example.com\nexample.net\n")
    assert (code, err) == (0, "")
    targets = parse_config(tomllib.loads(out), env={}).targets
    assert [(t.name, t.url) for t in targets] == [
        ("example.com", "https://example.com"),
        ("example.net", "https://example.net"),
    ]


def test_duplicate_names_get_numbered():
    urls = [
        "https://a.example/",
        "https://a.example",
        "http://a.example/",
        "https://a.example-2/",
        "https://a.example/?page=2",
    ]
    assert [t["name"] for t in targets_for(urls)] == [
        "a.example",
        "a.example-2",
        "a.example-3",
        "a.example-2-2",
        "a.example-4",
    ]


def test_generated_names_are_unique_and_valid():
    urls = urls_from_text("\n".join(["x.example"] * 12 + ["x.example-2", "x.example-3"]), "u")
    text = starter_config("m.toml", urls)
    targets = parse_config(tomllib.loads(text), env={}).targets
    assert len({t.name for t in targets}) == len(targets) == 14


def test_bad_lines_are_reported_with_their_numbers():
    text = "example.com\n\nftp://example.com/\n# fine\nhttp://\nsome host\nexample.org\n"
    with pytest.raises(ConfigError) as info:
        urls_from_text(text, "urls.txt")
    assert info.value.problems == [
        "urls.txt: line 3: invalid URL 'ftp://example.com/': expected http:// or https:// with a host",
        "urls.txt: line 5: invalid URL 'http://': expected http:// or https:// with a host",
        "urls.txt: line 6: invalid URL 'https://some host': invalid host name",
    ]


def test_bad_lines_through_init(init, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("example.com\nhttp://\n", encoding="utf-8")
    code, out, err = init("--from", str(urls), "-o", str(tmp_path / "m.toml"))
    assert (code, out) == (2, "")
    assert (
        err == f"{urls}: line 2: invalid URL 'http://': expected http:// or https:// with a host\n"
    )
    assert not (tmp_path / "m.toml").exists()


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing here\n   # nor here\n"])
def test_an_empty_list_is_an_error(init, text):
    with pytest.raises(ConfigError) as info:
        urls_from_text(text, "urls.txt")
    assert info.value.problems == ["urls.txt: no URLs found"]
    assert init("--from", "-", "-o", "-", stdin=text) == (2, "", "<stdin>: no URLs found\n")


def test_unreadable_url_list(init, tmp_path):
    missing = tmp_path / "missing.txt"
    code, out, err = init("--from", str(missing), "-o", "-")
    assert (code, out) == (2, "")
    assert err.startswith(f"trio-monitor: cannot read {missing}: ")
    assert err.count("\n") == 1
