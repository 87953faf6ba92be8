"""What `dramatiq widip.worker` and `periodiq widip.worker` load: every actor, then the checks.

The list below is the whole set of actor modules; `wiring.wire_worker` fails the start when an
actor and the job table disagree, and registers the LLM job handlers and playbooks.
"""

from widip import wiring
from widip.actors import (  # noqa: F401 - importing declares the actors
    agent, assist, docs, health, housekeeping, jobs, llm, llm_callbacks, metrics_push, scheduler, sentinel, tools)
from widip.messaging.broker import current

broker = wiring.wire_worker(current())
