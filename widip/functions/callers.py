"""Who is asking: the one value the SAFEGUARD gate, the audit log and authorisation all look at.

A caller is a human (a logged-in technician or approver), a service (a machine client holding a
scoped service token: the frontend, Observium's webhook), or an AI persona acting either for the
system (Sentinel, Notificateur, Assist) or on behalf of a human (WIBOT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("human", "service", "ai")
#: `mcp`: an outside MCP client (a service token with scope `mcp:tools`), with its own SAFEGUARD levels.
PERSONAS = ("sentinel", "notificateur", "assist", "wibot", "mcp")
#: Accreditation levels N0–N4 (seed 000): N0 read-only … N4 administrator.
LEVELS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Caller:
    kind: str
    username: str
    accreditation: int = 0
    user_id: int | None = None
    persona: str | None = None
    #: For an AI persona acting for a human (WIBOT): that human's user id. None for system work.
    on_behalf_of: int | None = None
    scopes: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown caller kind {self.kind!r}")
        if self.kind == "ai" and self.persona not in PERSONAS:
            raise ValueError(f"AI callers need a persona among {PERSONAS}")
        if self.accreditation not in LEVELS:
            raise ValueError("accreditation must be 0..4")

    @property
    def is_ai(self) -> bool:
        return self.kind == "ai"

    @property
    def is_human(self) -> bool:
        return self.kind == "human"

    @property
    def label(self) -> str:
        """How the audit log names this caller, e.g. "ai:wibot for user 7" or "human:approver"."""
        if self.is_ai:
            suffix = f" for user {self.on_behalf_of}" if self.on_behalf_of else ""
            if self.persona == "mcp":  # many MCP clients share the persona: name the token
                suffix = f":{self.username}{suffix}"
            return f"ai:{self.persona}{suffix}"
        return f"{self.kind}:{self.username}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "username": self.username, "accreditation": self.accreditation,
                "user_id": self.user_id, "persona": self.persona, "on_behalf_of": self.on_behalf_of,
                "scopes": list(self.scopes)}

    @classmethod
    def from_dict(cls, data: dict) -> "Caller":
        return cls(kind=data["kind"], username=data["username"], accreditation=data.get("accreditation", 0),
                   user_id=data.get("user_id"), persona=data.get("persona"),
                   on_behalf_of=data.get("on_behalf_of"), scopes=tuple(data.get("scopes", ())))


def system_persona(persona: str) -> Caller:
    """An AI persona doing system work (no human behind it): Sentinel, Notificateur, Assist."""
    return Caller(kind="ai", username=f"widip-{persona}", persona=persona)
