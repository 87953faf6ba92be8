"""Running one tool call against the integrations, after the gate said it may run."""

from __future__ import annotations

import logging
from typing import Any

from widip.errors import PolicyDenied
from widip.functions.jsonable import json_safe
from widip.functions.tools import scope
from widip.functions.tools.registry import ToolContext, get_tool, validate_arguments

logger = logging.getLogger(__name__)


def execute(name: str, arguments: Any, clients, context: ToolContext) -> Any:
    """Validate, then run the tool's handler; return JSON-safe data.

    Raises NotFound for an unknown tool and Invalid for bad arguments before anything runs, and the
    integration's Unavailable/Rejected/PolicyDenied errors when the call itself fails. The access
    matrix (`context.rights`) applies here, to every caller: PolicyDenied when the target is out of
    the user's scope, and the result filtered to it.
    """
    tool = get_tool(name)
    arguments = validate_arguments(tool, arguments)
    denied = scope.refusal(tool.name, tool.system, context.rights)
    if denied:
        raise PolicyDenied(denied)
    scope.check_target(tool.name, arguments, clients, context.rights)
    logger.info("executing tool %s (call %s, caller %s)", tool.name, context.call_id, context.caller_label)
    return scope.filter_result(tool.name, json_safe(tool.handler(clients, arguments, context)), clients, context.rights)
