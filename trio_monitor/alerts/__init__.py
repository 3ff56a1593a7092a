"""Alert channels: one module per channel, each registering a `NotifierKind` (base.py).
The built-in channels (webhook.py, exec.py) are imported, and so registered, by the
package's `__init__`; base.py imports none of them.
"""
