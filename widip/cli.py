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
    mcp = sub.add_parser("mcp", help="serve the MCP tools over stdio for a local client (token in WIDIP_TOKEN)")
    mcp.add_argument("--stdio", action="store_true", required=True,
                     help="speak MCP on stdin/stdout (Streamable HTTP is the Procfile's `mcp` process)")
    ingest = sub.add_parser("ingest", help="index documentation files or folders (Markdown, text, HTML, PDF)")
    ingest.add_argument("paths", nargs="+", help="files, or folders searched recursively")
    ingest.add_argument("--class", dest="doc_class", default="public", choices=["public", "contrats", "confidential"])
    ingest.add_argument("--client", default=None, help="only users allowed this client may read it")
    inv = sub.add_parser("inventory", help="import the estate: device → site, client, GLPI entity, operator line")
    inv.add_argument("action", choices=["import", "sync"], help="import a CSV, or add Observium's unmapped devices")
    inv.add_argument("path", nargs="?", help="CSV file (hostname,device_id,site,sub_location,client,glpi_entity_id,widip,role,"
                                  "operator,service_ref,technology)")
    sentinel = sub.add_parser("sentinel", help="replay recorded Observium deliveries against a running deployment")
    sentinel.add_argument("action", choices=["replay"])
    sentinel.add_argument("path", help="JSON lines: {\"at\": seconds or ISO time, \"body\": {...}} per delivery")
    sentinel.add_argument("--speed", type=float, default=1.0, help="time compression (60: an hour in a minute)")
    sentinel.add_argument("--keep-times", action="store_true",
                          help="send the recorded ALERT_UNIXTIME (a deployment that saw them de-duplicates them)")
    sentinel.add_argument("--url", default=None, help="webhook URL (default: $WIDIP_URL/webhook/widip-alertes)")
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


def cmd_mcp(args) -> int:
    """stdout carries the protocol, so logs go to stderr (configure_logging's stream) only."""
    from widip.mcp import stdio

    token = os.environ.get("WIDIP_TOKEN", "").strip()
    if not token:
        raise ConfigError(["WIDIP_TOKEN (a widip session or service token with scope mcp:tools) is required"])
    return stdio.run(Settings.from_env(), token)


def cmd_ingest(args) -> int:
    """Ingest each file (idempotent by checksum) with a progress bar on stderr."""
    from widip.functions.docs import ingest
    from widip.functions.docs.embedding import embedder_for

    settings, conn = _connect()
    files = ingest.expand_paths([Path(p) for p in args.paths])
    embedder = embedder_for(settings)
    counts: dict[str, int] = {}
    with conn:
        for index, path in enumerate(files, start=1):
            def progress(done, total, name=path.name, index=index):
                bar = "#" * (20 * done // max(total, 1))
                print(f"\r[{bar:<20}] file {index}/{len(files)} {name}: {done}/{total} chunks",
                      end="", file=sys.stderr, flush=True)

            outcome = ingest.ingest_path(conn, path, embedder, doc_class=args.doc_class, client=args.client,
                                         actor="cli", progress=progress)
            conn.commit()
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
            print(f"\r{outcome['status']:>9}  {path}" + " " * 30, file=sys.stderr, flush=True)
        if set(counts) - {"unchanged"}:
            ingest.analyze(conn)  # the planner's statistics, as after any bulk load
    print(f"ingested {len(files)} file(s) with {embedder.model}: {counts}")
    return 0


def cmd_inventory(args) -> int:
    from widip.functions.sentinel import inventory

    from widip.errors import Invalid

    if args.action == "sync":
        from widip import deps as process_deps

        d = process_deps.configure(Settings.from_env())
        report = inventory.sync_observium(d.pool, d.clients, ask_glpi=bool(d.settings.glpi_url))
        print(f"inventory synced from Observium: {report}")
        return 0
    settings, conn = _connect()
    if not args.path:
        print("widip: inventory import needs a CSV file", file=sys.stderr)
        return 2
    try:
        with conn:
            report = inventory.import_csv(conn, args.path, source=f"import:{Path(args.path).name}")
    except Invalid as exc:
        print(f"widip: inventory not imported: {exc.message}", file=sys.stderr)
        return 1
    print(f"inventory imported: {report}")
    return 0


def cmd_sentinel(args) -> int:
    from widip.functions.sentinel import replay

    url = args.url or os.environ.get("WIDIP_URL", "http://127.0.0.1:8000").rstrip("/") + "/webhook/widip-alertes"
    from widip.errors import Invalid

    try:
        report = replay.replay_file(args.path, url=url, token=os.environ.get("WEBHOOK_TOKEN", ""), speed=args.speed,
                                    keep_times=args.keep_times)
    except (Invalid, OSError) as exc:
        print(f"widip: nothing replayed: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    print(f"replayed: {report}")
    return 0 if not report["errors"] else 1


def cmd_simulators(args) -> int:
    """The simulators ship with the checkout, not in the wheel: run them from the project root."""
    from widip.config import PROJECT_ROOT

    if not (PROJECT_ROOT / "simulators").is_dir():
        print("widip simulators: run from a checkout of widip (the simulators are not installed)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(PROJECT_ROOT))
    from simulators import demo_stack

    return demo_stack.run(env_file=args.env_file)


COMMANDS = {
    "migrate": cmd_migrate, "up": cmd_up, "demo": cmd_demo,
    "scheduler": cmd_scheduler, "simulators": cmd_simulators, "access-matrix": cmd_access_matrix,
    "create-admin": cmd_create_admin, "service-token": cmd_service_token, "mcp": cmd_mcp, "ingest": cmd_ingest,
    "inventory": cmd_inventory, "sentinel": cmd_sentinel,
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
