"""Cluster mode: nodes sharing targets, state and alerts in Redis (`[cluster]`).

client.py owns the Redis side (keys, the Functions library functions.lua, one typed
method per function); the node runtime (membership, ownership, the outbox consumer)
builds on it. Only imported when a config has `[cluster]`: coredis is an extra.
"""
