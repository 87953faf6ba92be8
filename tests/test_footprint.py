"""What each process loads: provider SDKs only where a provider is configured, a scheduler that
loads no actor code but fires exactly the workers' periodic actors, one TLS context for every client, and
no HTTP extras nobody uses."""

import json
import os
import ssl
import subprocess
import sys

import pytest

from widip.config import PROJECT_ROOT

SDKS = ("anthropic", "ollama")
#: What httpx and httpcore would import only because it is installed: httpx's CLI (click, rich,
#: pygments) and trio. Our processes use neither.
UNUSED_EXTRAS = ("rich", "pygments", "trio")


def loaded_after(code: str, env: dict[str, str]) -> dict[str, bool]:
    """Run `code` in a fresh interpreter; which of the watched modules it left in sys.modules."""
    watched = (*SDKS, "widip.actors", "widip.functions.sentinel", "psycopg", "ldap3", "mcp", "pydantic",
               *UNUSED_EXTRAS)
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {watched!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def web_env(settings):
    return {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url, "WIDIP_ENV": "test",
            "WIDIP_BROKER": "stub", "LLM_PROVIDER": "auto", "OLLAMA_HOST": "", "ANTHROPIC_API_KEY": ""}


def test_the_web_app_imports_no_llm_sdk_when_no_model_is_configured(web_env):
    loaded = loaded_after("from widip.http.app import create_app_from_env\ncreate_app_from_env()", web_env)
    assert not any(loaded[sdk] for sdk in SDKS), loaded
    assert not loaded["ldap3"], "the web describes AD tools but never talks to AD"
    assert not any(loaded[extra] for extra in UNUSED_EXTRAS), loaded


def test_the_worker_loads_neither_the_httpx_command_line_client_nor_trio(web_env):
    loaded = loaded_after("import widip.worker\nimport httpx\nhttpx.Client(base_url='http://127.0.0.1:9').close()",
                          web_env)
    assert not any(loaded[extra] for extra in UNUSED_EXTRAS), loaded
    # Whichever widip module imports httpx first (here one that imports it before http_client).
    loaded = loaded_after("import widip.functions.integrations.glpi", web_env)
    assert not loaded["rich"] and not loaded["pygments"], loaded


def test_integration_clients_share_one_tls_context_per_ca_setting():
    from widip.functions.integrations.http_client import make_client, ssl_context

    clients = [make_client(url) for url in ("https://glpi.example", "https://observium.example")]
    try:
        # httpx keeps the context on the connection pool; each client would otherwise load the CA bundle.
        assert {id(c._transport._pool._ssl_context) for c in clients} == {id(ssl_context(True))}
    finally:
        for client in clients:
            client.close()
    assert ssl_context(False).verify_mode == ssl.CERT_NONE and ssl_context(True).verify_mode == ssl.CERT_REQUIRED


def test_a_configured_provider_loads_its_sdk_only_when_the_provider_is_built(web_env):
    env = {**web_env, "LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "sk-test",
           "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    app_only = loaded_after("from widip.http.app import create_app_from_env\ncreate_app_from_env()", env)
    assert not app_only["anthropic"] and not app_only["ollama"]
    built = loaded_after("from widip.http.app import create_app_from_env\nfrom widip.config import Settings\n"
                         "from widip.functions.llm.factory import provider_for\n"
                         "create_app_from_env()\nprint(provider_for(Settings.from_env()).name)", env)
    assert built["anthropic"] and not built["ollama"]


def test_the_mcp_process_serves_the_protocol_without_the_sdk_or_an_llm_sdk(web_env):
    # The SDK's models (pydantic, every protocol revision) cost the mcp process ~40 MB; it stays a test client.
    loaded = loaded_after("from widip.mcp.asgi import create_app\nfrom widip.config import Settings\n"
                          "create_app(Settings.from_env())", web_env)
    assert not loaded["mcp"] and not loaded["pydantic"], loaded
    assert not any(loaded[sdk] for sdk in SDKS) and not loaded["ldap3"], loaded
    assert not any(loaded[extra] for extra in UNUSED_EXTRAS), loaded


def test_the_scheduler_module_loads_no_actor_code_database_driver_or_sdk():
    loaded = loaded_after("import widip.ticks\nfrom widip.ticks import declare, schedule", {})
    assert not any(loaded.values()), loaded


def test_the_scheduler_fires_exactly_the_workers_periodic_actors(monkeypatch):
    from periodiq import cron

    import widip.worker  # noqa: F401 - registers every actor on the (stub) broker
    import dramatiq

    from widip.ticks import QUEUE, schedule

    periodic = {name: actor for name, actor in dramatiq.get_broker().actors.items() if "periodic" in actor.options}
    assert set(periodic) == set(schedule())
    for name, spec in schedule().items():
        assert periodic[name].queue_name == QUEUE
        assert periodic[name].options["periodic"] == cron(spec), name


def test_the_sentinel_tick_follows_workflow_interval_seconds():
    from widip.ticks import schedule

    assert schedule({"WORKFLOW_INTERVAL_SECONDS": "60"})["tick_sentinel"] == "* * * * *"
    assert schedule({"WORKFLOW_INTERVAL_SECONDS": "600"})["tick_sentinel"] == "*/10 * * * *"
    assert schedule({"WORKFLOW_INTERVAL_SECONDS": "7200"})["tick_sentinel"] == "0 * * * *"
    assert schedule({})["tick_sentinel"] == "*/5 * * * *"


def test_the_offline_embedder_maps_word_vectors_without_importing_spacy(tmp_path):
    # The first use converts spaCy's table in a child process; this process and later ones only map it.
    probe = ("from pathlib import Path\nimport sys\nfrom widip.functions.docs.embedding import SpacyEmbedder\n"
             f"cache = Path({str(tmp_path)!r})\n"
             "vpn, tunnel, printer = SpacyEmbedder(cache).embed(['VPN', 'tunnel chiffré', 'imprimante'])\n"
             "close = sum(a * b for a, b in zip(vpn, tunnel)); far = sum(a * b for a, b in zip(vpn, printer))\n"
             "rss = int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024\n"
             "print('spacy' in sys.modules, close > far, rss)")
    for _ in range(2):  # converting, then mapping what the first run left in the cache
        out = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        spacy_loaded, meaningful, rss_mb = out.stdout.split()
        assert spacy_loaded == "False" and meaningful == "True" and int(rss_mb) < 150, out.stdout
    assert sorted(p.name for p in next(tmp_path.iterdir()).iterdir()) == ["rows.npy", "table.npy", "words.npy"]
