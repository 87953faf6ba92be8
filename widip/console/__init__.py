"""The web console: French, server-rendered pages for technicians, approvers and administrators.

Pages and their polled widgets are rendered here from the same domain functions the JSON API uses;
every action (chat, approve, reject, levels, maintenance windows) goes through the JSON API with the
session cookie and its CSRF header, so policy stays in one place. No Node, no CDN: Jinja2 templates
and a few plain ES modules under static/.
"""
