"""`trio-monitor validate`: check the config without probing."""

from __future__ import annotations

import argparse

from .common import read_config, with_config


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    with_config(cmd)


def command(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    print(f"{args.config}: ok, {len(config.targets)} targets")
    return 0
