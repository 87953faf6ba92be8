"""The running parts bench/assist_eval.py replays tickets on, all on 127.0.0.1 and all stopped on exit:
embedded PostgreSQL + Valkey (migrated, seeded), the GLPI, Password Pusher and (hostile run) Ollama
simulators, the LDAPS AD stand-in, an SMTP sink, and the StubBroker with one in-process worker."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("WIDIP_BROKER", "stub")

#: The GLPI group account creations go to during the evaluation (ASSIST_ACCOUNTS_GROUP_ID).
ACCOUNTS_GROUP_ID = 7


@dataclass
class World:
    """The running parts a replay needs."""

    settings: object
    glpi_state: object
    directory: object
    mail_sink: object
    broker: object
    worker: object
    ollama_state: object | None = None
    writes_before: int = 0
    mails_before: int = 0
    notes: list = field(default_factory=list)
    cycle_seconds: float | None = None  # the replay's cycles alone, when they ran back to back


@contextmanager
def running_world(workdir: Path, *, hostile: bool):
    from dramatiq import Worker

    from simulators import glpi as glpi_sim
    from simulators import ollama as ollama_sim
    from simulators import pwpush
    from simulators.active_directory import DEMO_BASE_DN, DEMO_SERVICE_PASSWORD, DEMO_SERVICE_USER, State
    from simulators.base import serve
    from simulators.glpi_state import DEMO
    from simulators.ldap_server import start_server
    from simulators.smtp import start_sink
    from simulators.tls import generate_tls_files
    from widip import deps as actor_deps
    from widip import embedded
    from widip.config import PROJECT_ROOT, Settings
    from widip.functions import db, seeding

    with ExitStack() as stack:
        servers = embedded.start(workdir / "servers", persist=False, database="widip_assist_eval")
        stack.callback(servers.stop)
        db.migrate(servers.database_url, PROJECT_ROOT / "sql")
        with db.connect(servers.database_url) as conn:
            seeding.seed(conn, PROJECT_ROOT / "policy")
        glpi_state = glpi_sim.State()
        glpi_state.seed({k: DEMO[k] for k in ("entities", "categories", "users")})
        glpi = serve(glpi_sim.make_app(glpi_state))
        stack.callback(glpi.stop)
        directory = State().seed_demo()
        tls = generate_tls_files(workdir / "tls")
        ldap = start_server(directory, tls=tls)
        stack.callback(ldap.stop)
        push = serve(pwpush.make_app(pwpush.State().seed_demo()))
        stack.callback(push.stop)
        sink = start_sink(workdir / "mail")
        stack.callback(sink.stop)
        ollama_state, llm = None, {"llm_provider": "rules"}
        if hostile:
            ollama_state = ollama_sim.State().seed_demo()
            model = serve(ollama_sim.make_app(ollama_state))
            stack.callback(model.stop)
            llm = {"llm_provider": "ollama", "ollama_host": model.url, "llm_timeout_seconds": 10.0}
        settings = Settings(
            database_url=servers.database_url, redis_url=servers.redis_url, env="test", broker="stub",
            var_dir=workdir / "var", policy_dir=PROJECT_ROOT / "policy", glpi_url=glpi.url + "/apirest.php",
            glpi_app_token="sim-app-token", glpi_user_token="sim-user-token", smtp_host=sink.host,
            smtp_port=sink.port, smtp_use_tls="none", ad_server=ldap.ldaps_url, ad_user=DEMO_SERVICE_USER,
            ad_password=DEMO_SERVICE_PASSWORD, ad_base_dn=DEMO_BASE_DN, ca_file=tls.ca_file,
            mysecret_api_url=push.url, mysecret_api_token=pwpush.DEMO_TOKEN, integration_timeout_seconds=5.0,
            assist_accounts_group_id=ACCOUNTS_GROUP_ID, **llm)
        from widip.messaging.broker import current

        broker = current()

        actor_deps.configure(settings)
        stack.callback(lambda: actor_deps.deps().close())  # before the servers it talks to stop
        worker = Worker(broker, worker_timeout=100)
        worker.start()
        stack.callback(worker.stop)
        conn = stack.enter_context(db.connect(servers.database_url, autocommit=True))
        yield World(settings, glpi_state, directory, sink, broker, worker, ollama_state), conn
