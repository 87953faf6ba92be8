"""gunicorn settings of the Procfile's `web` (`gunicorn -c python:widip.gunicorn_conf …`).

Boot messages only at LOG_LEVEL=DEBUG; the master logs one line once it listens.
"""

import os

loglevel = "debug" if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG" else "warning"


def when_ready(server):
    from widip.logs import announce_ready

    announce_ready("web", f"http://{','.join(server.cfg.bind)} ({server.cfg.workers} workers)")
