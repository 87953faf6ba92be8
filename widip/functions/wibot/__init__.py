"""WIBOT: conversations with memory, the system prompt shaped by the user's rights, documentation answers."""
