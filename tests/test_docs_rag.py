"""Documentation RAG on the real database: ingestion by checksum, chunking, hybrid retrieval, rights in SQL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from widip.config import PROJECT_ROOT
from widip.errors import Invalid
from widip.functions.access_matrix import AccessRights
from widip.functions.docs import chunking, ingest, search
from widip.functions.docs.embedding import SpacyEmbedder, _spacy

RUNBOOKS = PROJECT_ROOT / "docs" / "runbooks"


@pytest.fixture(scope="module")
def embedder() -> SpacyEmbedder:
    return _spacy()


@pytest.fixture
def corpus(conn, embedder):
    counts = ingest.ingest_tree(conn, [RUNBOOKS], embedder, actor="test")
    assert counts == {"created": len(list(RUNBOOKS.glob("*.md")))}
    return conn


def everything() -> search.Scope:
    return search.Scope.of(AccessRights(acces_base_docs=True, acces_contrats=True, acces_confidential=True,
                                        clients_autorises=("*",)))


def test_markdown_is_cut_at_headings_with_the_heading_path_and_long_sections_overlap():
    text = "# Guide\n\nintro\n\n## VPN\n\n### Clinique\n\n" + "\n\n".join(f"Paragraphe {i} " + "mot " * 60
                                                                      for i in range(8))
    chunks = chunking.chunk(text)
    assert chunks[0].heading == "Guide" and chunks[0].text == "intro"
    clinic = [c for c in chunks if c.heading == "Guide > VPN > Clinique"]
    assert len(clinic) > 1 and all(len(c.text) <= chunking.MAX_CHARS + chunking.OVERLAP_CHARS for c in clinic)
    # the start of each next piece repeats the end of the previous one
    assert clinic[1].text.split("\n\n")[0] in clinic[0].text


def test_html_headings_become_the_heading_path_and_scripts_are_dropped():
    html = b"<html><script>alert(1)</script><h1>Titre</h1><p>Un</p><h2>Partie</h2><p>Deux &amp; trois</p></html>"
    chunks = chunking.chunk(chunking.to_markdown(html, "html"))
    assert [(c.heading, c.text) for c in chunks] == [("Titre", "Un"), ("Titre > Partie", "Deux & trois")]


def test_an_unsupported_file_type_is_refused_with_a_clear_message():
    with pytest.raises(Invalid, match="unsupported document type"):
        chunking.format_for("notes.docx")


def test_reingesting_an_unchanged_file_does_nothing_and_a_changed_one_replaces_its_chunks(conn, embedder, tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("# Guide\n\n## Imprimantes\n\nRedémarrer le spouleur d'impression.\n", encoding="utf-8")
    first = ingest.ingest_path(conn, path, embedder)
    assert first["status"] == "created"
    again = ingest.ingest_path(conn, path, embedder)
    assert again["status"] == "unchanged"
    path.write_text("# Guide\n\n## Scanners\n\nVérifier le pilote TWAIN.\n\n## Copieurs\n\nAppeler le loueur.\n",
                    encoding="utf-8")
    changed = ingest.ingest_path(conn, path, embedder)
    assert changed["status"] == "replaced" and changed["document"]["id"] == first["document"]["id"]
    rows = conn.execute("SELECT heading, embedding_model, embedding_dim FROM chunks WHERE document_id = %s "
                        "ORDER BY position", (first["document"]["id"],)).fetchall()
    assert [r["heading"] for r in rows] == ["Guide > Scanners", "Guide > Copieurs"]
    assert {(r["embedding_model"], r["embedding_dim"]) for r in rows} == {("spacy:fr_core_news_md", 300)}


def test_a_vpn_question_finds_the_ehpad_section_of_the_vpn_runbook(corpus, embedder):
    found = search.search(corpus, "Comment configurer le VPN pour un nouvel EHPAD ?", everything(),
                          embedder=embedder)
    assert {p["title"] for p in found[:2]} == {"Raccordement VPN d'un nouveau site"}
    assert any(p["heading"].endswith("Spécificités EHPAD") for p in found[:2]), [p["heading"] for p in found]
    assert found[0]["citation"].startswith(f"doc{found[0]['document_id']}-")


def test_full_text_ignores_accents_and_matches_french_inflections(corpus):
    ids = search.fulltext_ids(corpus, "reinitialisation mots de passe bloques", everything())
    headings = [p["heading"] for p in search.passages(corpus, ids)]
    assert any("Réinitialisation" in h for h in headings[:3]), headings


def test_vector_search_finds_a_passage_sharing_no_word_with_the_question(corpus, embedder):
    # "maison de retraite" and "tunnel" appear nowhere in the VPN EHPAD section's words; meaning does.
    question = "connexion sécurisée pour une maison de retraite"
    assert search.fulltext_ids(corpus, "maison retraite", everything()) == []
    ids = search.vector_ids(corpus, embedder.embed([question])[0], embedder.model, everything(), limit=5)
    titles = {p["title"] for p in search.passages(corpus, ids)}
    assert "Raccordement VPN d'un nouveau site" in titles


def test_a_reader_never_gets_a_class_or_client_they_may_not_see(corpus, embedder):
    secret = ingest.ingest_bytes(corpus, source="secret.md", raw="# Coffre\n\nLe code VPN d'urgence est 4242.".encode(),
                                 fmt="markdown", embedder=embedder, doc_class="confidential", actor="test")
    other = ingest.ingest_bytes(corpus, source="tilleuls.md", raw="# Tilleuls\n\nLe VPN des Tilleuls passe par Orange."
                                .encode(), fmt="markdown", embedder=embedder, client="EHPAD Les Tilleuls", actor="test")
    tech = search.Scope.of(AccessRights(acces_base_docs=True, clients_autorises=("EHPAD Saint-Joseph",)))
    seen = {p["document_id"] for mode in search.MODES
            for p in search.search(corpus, "code VPN d'urgence Tilleuls", tech, embedder=embedder, limit=50, mode=mode)}
    assert seen and secret["document"]["id"] not in seen and other["document"]["id"] not in seen
    boss = search.Scope.of(AccessRights(acces_base_docs=True, acces_confidential=True,
                                        clients_autorises=("ehpad les tilleuls",)))
    found = {p["document_id"] for p in search.search(corpus, "code VPN d'urgence Tilleuls", boss, embedder=embedder)}
    assert {secret["document"]["id"], other["document"]["id"]} <= found
    assert search.search(corpus, "VPN", search.Scope.of(AccessRights()), embedder=embedder) == []


def test_a_pdf_is_indexed_page_by_page(conn, embedder):
    pdf = _tiny_pdf("Procedure de sauvegarde quotidienne des serveurs")
    outcome = ingest.ingest_bytes(conn, source="sauvegarde.pdf", raw=pdf, fmt="pdf", embedder=embedder, actor="test")
    row = conn.execute("SELECT heading, text FROM chunks WHERE document_id = %s", (outcome["document"]["id"],)).fetchone()
    assert row["heading"] == "Page 1" and "sauvegarde quotidienne" in row["text"]


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, offsets computed (no PDF writer dependency)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_documents_over_http_upload_by_n3_list_search_with_rights_and_delete(app_client, stub_broker, stub_worker,
                                                                            people, conn):
    from tests.conftest import drain

    page = "<h1>Badges</h1><h2>Perte</h2><p>Un badge perdu se désactive dans la console d'accès.</p>"
    body = {"filename": "badges.html", "content": page, "class": "public"}
    assert app_client.simulate_post("/documents", json=body, headers=people.tech.headers).status_code == 403
    accepted = app_client.simulate_post("/documents", json=body, headers=people.approver.headers)
    assert accepted.status_code == 202, accepted.text
    secret = {"filename": "coffre.txt", "content_base64": base64.b64encode("Badge maître : armoire 3.".encode()).decode(),
              "class": "confidential"}
    assert app_client.simulate_post("/documents", json=secret, headers=people.approver.headers).status_code == 202
    drain(stub_broker, stub_worker)
    job = app_client.simulate_get(accepted.headers["location"], headers=people.approver.headers).json
    assert job["status"] == "done" and job["result"]["chunks"] == 1
    listed = app_client.simulate_get("/documents", headers=people.approver.headers).json["documents"]
    assert sorted(d["title"] for d in listed) == ["Badges", "coffre.txt"]
    found = app_client.simulate_get("/documents/search", params={"q": "badge perdu"}, headers=people.tech.headers).json
    assert [p["heading"] for p in found["passages"]] == ["Badges > Perte"]  # the confidential one stays hidden
    bad = app_client.simulate_post("/documents", json={"filename": "x.docx", "content": "a"},
                                   headers=people.approver.headers)
    assert bad.status_code == 400 and "unsupported document type" in bad.json["description"]
    badges = next(d["id"] for d in listed if d["title"] == "Badges")
    assert app_client.simulate_delete(f"/documents/{badges}", headers=people.approver.headers).status_code == 200
    assert app_client.simulate_delete(f"/documents/{badges}", headers=people.approver.headers).status_code == 404
    assert app_client.simulate_get("/documents/search", params={"q": "badge perdu"},
                                   headers=people.tech.headers).json["passages"] == []


def test_changing_the_embedding_model_reembeds_in_the_background_and_never_mixes_dimensions(
        corpus, embedder, settings, stub_broker, stub_worker, ollama):
    from tests.conftest import drain
    from widip import deps as actor_deps
    from widip.actors.docs import reembed_documents
    from widip.functions.docs.embedding import embedder_for

    # Given every passage embedded by the offline default (300 dimensions), then OLLAMA_EMBED_MODEL set to
    # a model of another dimension (bge-m3: 1024)
    new_settings = settings.with_overrides(ollama_host=ollama[1], ollama_embed_model="bge-m3")
    new = embedder_for(new_settings)
    total = corpus.execute("SELECT count(*) AS n FROM chunks").fetchone()["n"]
    target = corpus.execute("SELECT c.id, c.heading, c.text, d.title FROM chunks c JOIN documents d "
                            "ON d.id = c.document_id WHERE c.heading LIKE '%%Spécificités EHPAD'").fetchone()
    question = ingest.embedding_text(target["title"], target["heading"], target["text"])

    # During the transition, each query compares vectors of its own model and dimension only
    with corpus.transaction():
        assert ingest.reembed_stale(corpus, new, limit=5) == 5
    moved = {r["id"] for r in corpus.execute("SELECT id FROM chunks WHERE embedding_model = 'ollama:bge-m3'")}
    assert len(moved) == 5 and target["id"] not in moved
    with corpus.transaction():
        assert set(search.vector_ids(corpus, new.embed([question])[0], new.model, everything(), 50)) == moved
        old_ids = search.vector_ids(corpus, embedder.embed([question])[0], embedder.model, everything(), total)
    assert old_ids[0] == target["id"] and not moved & set(old_ids)
    with corpus.transaction():
        assert search.search(corpus, question, everything(), embedder=new, limit=3)[0]["heading"] == target["heading"]

    # When the periodic actor runs with the new settings
    actor_deps.configure(new_settings)
    reembed_documents.send()
    drain(stub_broker, stub_worker)

    # Then every passage carries the new model and dimension, the vector search with the new model finds
    # them through that dimension's HNSW index, and the old model's vectors are gone
    rows = corpus.execute("SELECT embedding_model, embedding_dim, vector_dims(embedding) AS dims, count(*) AS n "
                          "FROM chunks GROUP BY 1, 2, 3").fetchall()
    assert [dict(r) for r in rows] == [{"embedding_model": "ollama:bge-m3", "embedding_dim": 1024, "dims": 1024,
                                        "n": total}]
    with corpus.transaction():
        found = search.search(corpus, question, everything(), embedder=new, mode="vector", limit=3)
        assert found[0]["heading"] == target["heading"]
        assert search.vector_ids(corpus, embedder.embed([question])[0], embedder.model, everything()) == []
    index = corpus.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_hnsw_1024'").fetchone()
    assert "USING hnsw" in index["indexdef"] and "WHERE (embedding_dim = 1024)" in index["indexdef"]
    # and re-ingesting the unchanged runbooks does nothing
    assert ingest.ingest_tree(corpus, [RUNBOOKS], new, actor="test") == {"unchanged": len(list(RUNBOOKS.glob("*.md")))}
