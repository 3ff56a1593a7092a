"""Consumers that write records out: JSON lines (jsonl.py)."""
