"""The `widip` command: migrate, up, demo, scheduler, simulators.

`widip up` is the one-command deployment for a single host: with no DATABASE_URL/REDIS_URL it
starts embedded PostgreSQL + Valkey under ./var (kept between runs), migrates, writes
var/demo.env, then runs and supervises every Procfile process until Ctrl-C, and stops what it
started.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from widip.config import PROJECT_ROOT, Settings
from widip.errors import ConfigError
from widip.logs import configure_logging

logger = logging.getLogger("widip.cli")

PROCFILE = PROJECT_ROOT / "Procfile"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="widip", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending sql/NNN_*.sql migrations")
    up = sub.add_parser("up", help="start embedded services (if no URLs are set) and every Procfile process")
    demo = sub.add_parser("demo", help="like up, plus the simulators and demo data")
    for p in (up, demo):
        p.add_argument("--only", nargs="*", help="run only these Procfile processes")
    sub.add_parser("scheduler", help="run the periodiq scheduler (one per deployment)")
    matrix = sub.add_parser("access-matrix", help="import policy/access_matrix.csv (idempotent)")
    matrix.add_argument("action", choices=["import"])
    matrix.add_argument("path", nargs="?", help="CSV file (default: policy/access_matrix.csv)")
    admin = sub.add_parser("create-admin", help="create an N4 administrator (password from WIDIP_ADMIN_PASSWORD or prompt)")
    admin.add_argument("username")
    admin.add_argument("--email", default=None)
    token = sub.add_parser("service-token", help="create a scoped service token (printed once)")
    token.add_argument("name")
    token.add_argument("--scope", action="append", required=True, help="e.g. webhook:observium, frontend")
    sims = sub.add_parser("simulators", help="run the local simulators of GLPI, Observium, … for the demo")
    sims.add_argument("--env-file", default=None, help="write the simulators' URLs and tokens here")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"widip: {exc}", file=sys.stderr)
        return 2


def cmd_migrate(args) -> int:
    from widip.functions import db

    from widip.functions import seeding

    settings = Settings.from_env()
    applied = db.migrate(settings.database_url, settings.sql_dir)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    with db.connect(settings.database_url) as conn:
        print(f"seeded: {seeding.seed(conn, settings.policy_dir)}")
    return 0


def _connect():
    from widip.functions import db

    settings = Settings.from_env()
    return settings, db.connect(settings.database_url)


def cmd_access_matrix(args) -> int:
    from widip.functions import access_matrix

    settings, conn = _connect()
    with conn:
        report = access_matrix.import_access_matrix(conn, args.path or access_matrix.default_path(settings))
    print(f"access matrix imported: {report.to_dict()}")
    return 0


def cmd_create_admin(args) -> int:
    import getpass

    from widip.functions import identity

    password = os.environ.get("WIDIP_ADMIN_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    settings, conn = _connect()
    with conn:
        user = identity.create_user(conn, username=args.username, password=password, email=args.email,
                                    accreditation_level=4, actor="cli")
    print(f"administrator {user.username} created (id {user.id}, N4)")
    return 0


def cmd_service_token(args) -> int:
    from widip.functions import identity

    settings, conn = _connect()
    with conn:
        issued = identity.create_service_token(conn, name=args.name, scopes=args.scope, actor="cli")
    print(f"service token for {args.name} (scopes {', '.join(args.scope)}); shown once:\n{issued.token}")
    return 0


def cmd_up(args, *, demo: bool = False) -> int:
    from widip import launcher

    return launcher.run(var_dir=Path(os.environ.get("WIDIP_VAR_DIR") or PROJECT_ROOT / "var").resolve(),
                        procfile=PROCFILE, demo=demo, only=args.only)


def cmd_demo(args) -> int:
    return cmd_up(args, demo=True)


def cmd_scheduler(args) -> int:
    """Fire the periodic ticks (widip.ticks: no actor code is loaded in this process)."""
    from widip import ticks

    return ticks.run()


def cmd_simulators(args) -> int:
    from simulators import demo_stack

    return demo_stack.run(env_file=args.env_file)


COMMANDS = {
    "migrate": cmd_migrate, "up": cmd_up, "demo": cmd_demo,
    "scheduler": cmd_scheduler, "simulators": cmd_simulators, "access-matrix": cmd_access_matrix,
    "create-admin": cmd_create_admin, "service-token": cmd_service_token,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
