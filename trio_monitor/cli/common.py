"""What several commands share: the -c/--config option and its default, and reading
the config."""

from __future__ import annotations

import argparse

from .. import _gc
from .._config import Config, load_config

DEFAULT_CONFIG = "monitor.toml"


def with_config(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})"
    )


def read_config(path: str) -> Config:
    """load_config, with the garbage collector paused meanwhile (_gc.py)."""
    with _gc.paused():
        return load_config(path)
