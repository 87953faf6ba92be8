"""WIDIP as a Model Context Protocol server: the tool registry behind the same SAFEGUARD gate (issue 16)."""
