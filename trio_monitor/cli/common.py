"""What several commands share: the -c/--config option and its default."""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "monitor.toml"


def with_config(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})"
    )
