"""Tool definitions and lookup; argument validation against each tool's strict JSON Schema."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from jsonschema import Draft202012Validator

from widip.errors import Invalid, NotFound
from widip.functions import untrusted

SYSTEMS = ("glpi", "observium", "phibee", "smtp", "active_directory", "mysecret", "docs")
#: Modules that define tools, one per external system.
_CATALOG_MODULES = ("glpi_tools", "observium_tools", "phibee_tools", "mail_tools", "ad_tools", "mysecret_tools",
                    "docs_tools")


@dataclass(frozen=True)
class ToolContext:
    """What a handler may know about the call besides its arguments."""

    call_id: str
    caller_label: str = "system"
    #: The verified requester's e-mail (from GLPI, never from ticket text): may receive mail.
    verified_requester: str | None = None
    #: The human whose rights bound what the call may read (the user a WIBOT session acts for).
    principal_user_id: int | None = None
    #: The access-matrix rights of the human behind the call (None: system work, unfiltered).
    rights: Any = None


@dataclass(frozen=True)
class Tool:
    name: str
    system: str
    description: str
    schema: dict
    handler: Callable[[Any, dict, ToolContext], Any] = field(repr=False, compare=False)
    #: True when the tool changes nothing anywhere (safe to retry, safe to show everyone).
    read_only: bool = False
    #: What to do when a crash leaves the outcome unknown: "retry" (idempotent), or "reconcile"
    #: (the handler checks the remote side first, e.g. a marker search), or "ask_human".
    on_unknown_outcome: str = "retry"

    def __post_init__(self):
        if self.system not in SYSTEMS:
            raise ValueError(f"{self.name}: unknown system {self.system!r}")
        if self.schema.get("type") != "object" or self.schema.get("additionalProperties") is not False:
            raise ValueError(f"{self.name}: schemas must be closed objects (additionalProperties: false)")
        Draft202012Validator.check_schema(self.schema)

    def describe(self) -> dict:
        return {"name": self.name, "system": self.system, "description": self.description,
                "schema": self.schema, "read_only": self.read_only}


_registry: dict[str, Tool] | None = None


def _load() -> dict[str, Tool]:
    global _registry
    if _registry is None:
        tools: dict[str, Tool] = {}
        for module_name in _CATALOG_MODULES:
            module = importlib.import_module(f"widip.functions.tools.{module_name}")
            for tool in module.TOOLS:
                if tool.name in tools:
                    raise ValueError(f"duplicate tool name {tool.name}")
                tools[tool.name] = tool
        _registry = tools
    return _registry


def all_tools() -> list[Tool]:
    return sorted(_load().values(), key=lambda t: t.name)


def get_tool(name: str) -> Tool:
    tool = _load().get(name) if isinstance(name, str) else None
    if tool is None:
        raise NotFound(f"unknown tool {str(name)[:80]!r}")
    return tool


def validate_arguments(tool: Tool, arguments: Any) -> dict:
    """Return the arguments if they match the tool's schema; raise Invalid naming the first problem."""
    if not isinstance(arguments, dict):
        raise Invalid(f"{tool.name}: arguments must be an object")
    trouble = untrusted.problem(arguments)
    if trouble:
        raise Invalid(f"{tool.name}: arguments: {trouble}")
    try:
        untrusted.check(arguments, tool.schema, "arguments")
    except Invalid as exc:
        raise Invalid(f"{tool.name}: {exc.message}") from None
    return arguments


def obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    """A closed JSON Schema object (the only kind tools accept)."""
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}
