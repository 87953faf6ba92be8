"""widip: the WIDIP automation platform (Sentinel, Assist, WIBOT, SAFEGUARD)."""

import sys

# httpx imports its command-line client (click, rich, pygments: ~4 MB per process) whenever those happen
# to be installed; no widip process runs it. A None entry makes that one import fail, and httpx then
# skips its CLI as it does when they are absent. Here, because any widip module may import httpx first.
sys.modules.setdefault("httpx._main", None)
