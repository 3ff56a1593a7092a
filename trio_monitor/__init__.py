"""trio-monitor: endpoint and website monitor on trio and httpx.

The public API; everything else lives in private modules, one concern each.
"""

from ._config import Config, Target, load_config, parse_config
from ._errors import ConfigError, ErrorKind, MonitorError, ProbeFailure, UsageError
from ._lifecycle import Monitor, run_monitor
from ._records import SCHEMA, AlertEvent, ProbeResult, RoundSummary
from .probes.http.probe import prepare, probe

__version__ = "0.1.0"

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
    "UsageError",
    "load_config",
    "parse_config",
    "prepare",
    "probe",
    "run_monitor",
]
