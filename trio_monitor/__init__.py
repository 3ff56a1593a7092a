"""trio-monitor: endpoint and website monitor on trio and httpx.

The public API; everything else lives in private modules and subpackages, one concern
each (docs/architecture.md). Importing the package registers the built-in probe kinds
and alert channels.
"""

from . import _gc

# Importing the package makes thousands of long-lived objects (classes, the converters'
# generated functions) and no garbage: the cyclic collector walking them meanwhile cost
# a quarter of the import's CPU when the modules compile from source (an editable
# install without bytecode), a few percent from bytecode, at every start of every
# command. paused() restores the collector's state after.
with _gc.paused():
    from ._config import Config, Target, load_config, parse_config
    from ._errors import ConfigError, ErrorKind, MonitorError, ProbeFailure, UsageError
    from ._lifecycle import Monitor, run_monitor
    from ._records import SCHEMA, AlertEvent, ProbeResult, RoundSummary, TargetRemoved
    from ._version import __version__
    from .alerts import apprise as _apprise  # noqa: F401  (registers the channel)
    from .alerts import exec as _exec  # noqa: F401  (registers the channel)
    from .alerts import webhook as _webhook  # noqa: F401  (registers the channel)
    from .probes import browser as _browser  # noqa: F401  (registers the kind)
    from .probes import dns as _dns  # noqa: F401  (registers the kind)
    from .probes import icmp as _icmp  # noqa: F401  (registers the kind)
    from .probes import push as _push  # noqa: F401  (registers the kind)
    from .probes import ws as _ws  # noqa: F401  (registers the kind)
    from .probes.http import prepare, probe
    from .probes.tcp import KIND as _tcp  # noqa: F401  (registers the kind)
    from .probes.tls import KIND as _tls  # noqa: F401  (registers the kind)

__all__ = [
    "SCHEMA",
    "AlertEvent",
    "Config",
    "ConfigError",
    "ErrorKind",
    "Monitor",
    "MonitorError",
    "ProbeFailure",
    "ProbeResult",
    "RoundSummary",
    "Target",
    "TargetRemoved",
    "UsageError",
    "__version__",
    "load_config",
    "parse_config",
    "prepare",
    "probe",
    "run_monitor",
]
