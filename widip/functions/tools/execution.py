"""Running one tool call against the integrations, after the gate said it may run."""

from __future__ import annotations

import logging
from typing import Any

from widip.functions.tools.registry import ToolContext, as_json, get_tool, validate_arguments

logger = logging.getLogger(__name__)


def execute(name: str, arguments: Any, clients, context: ToolContext) -> Any:
    """Validate, then run the tool's handler; return JSON-safe data.

    Raises NotFound for an unknown tool and Invalid for bad arguments before anything runs, and the
    integration's Unavailable/Rejected/PolicyDenied errors when the call itself fails.
    """
    tool = get_tool(name)
    arguments = validate_arguments(tool, arguments)
    logger.info("executing tool %s (call %s, caller %s)", tool.name, context.call_id, context.caller_label)
    return as_json(tool.handler(clients, arguments, context))
