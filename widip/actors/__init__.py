"""Dramatiq actors: thin wrappers that fetch dependencies and call plain functions.

Importing this package sets up the broker (from the environment) and then imports every actor
module in it, so the worker, the scheduler and the web process all see every actor.
"""

import importlib
import pkgutil

from widip.actors.broker import setup_broker_from_env

broker = setup_broker_from_env()

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("broker", "deps", "tracking"):
        importlib.import_module(f"{__name__}.{_module.name}")
