"""How work reaches the broker: its setup, the one door (`door.send`), the outbox relay, job tracking."""
