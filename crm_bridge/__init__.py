"""crm-bridge: a CRM layer on top of the ERP you already run.

The public API for plugin and adapter authors is re-exported here.
"""

__version__ = "0.1.0"

from crm_bridge.adapter import Adapter, AdapterSpec, Batch, Capabilities, Check, WriteResult
from crm_bridge.fields import Field
from crm_bridge.hookspecs import hookimpl
from crm_bridge.snapshot import Snapshot

__all__ = [
    "Adapter",
    "AdapterSpec",
    "Batch",
    "Capabilities",
    "Check",
    "Field",
    "Snapshot",
    "WriteResult",
    "__version__",
    "hookimpl",
]
