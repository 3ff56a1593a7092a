"""Probe kinds: one subpackage or module per kind, each registering a `ProbeKind`
(base.py). The built-in kinds are imported, and so registered, by the package's
`__init__`; base.py imports none of them, so the config can read the registry
without an import circle.
"""
