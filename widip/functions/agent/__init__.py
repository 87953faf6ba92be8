"""The agent runtime (docs/architecture.md): personas, sessions with polled events, and the step loop.

    personas.py  who each agent is: prompt, tools, budgets
    sessions.py  sessions and their ordered events
    runtime.py   one step: provider → events → tool calls through the SAFEGUARD gate
"""
