"""The tool registry: every action an agent or a human can take on an external system.

Each tool has a stable name, product-copy description (what the model reads), a strict JSON Schema
for its arguments, its system, and a handler over the integration clients. Whether a call may run is
never decided here: that is SAFEGUARD's gate (widip.functions.safeguard).
"""

from widip.functions.tools.registry import Tool, ToolContext, all_tools, get_tool, validate_arguments
from widip.functions.tools.execution import execute

__all__ = ["Tool", "ToolContext", "all_tools", "get_tool", "validate_arguments", "execute"]
