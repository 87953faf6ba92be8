-- WIBOT (issue 14): the documentation WIBOT answers from (documents → chunks with a pgvector embedding
-- and a French, accent-insensitive tsvector) and conversations with memory.
CREATE EXTENSION IF NOT EXISTS unaccent;

-- French stemming after accent removal: "reinitialiser" finds "réinitialisation".
CREATE TEXT SEARCH CONFIGURATION widip_french (COPY = french);
ALTER TEXT SEARCH CONFIGURATION widip_french
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem;

CREATE TABLE documents (
    id          bigserial PRIMARY KEY,
    title       text NOT NULL,
    source      text NOT NULL UNIQUE,            -- file path or URL: what re-ingestion matches on
    class       text NOT NULL DEFAULT 'public' CHECK (class IN ('public', 'contrats', 'confidential')),
    client      text,                            -- NULL: every client; else only users allowed this client
    format      text NOT NULL CHECK (format IN ('markdown', 'text', 'html', 'pdf')),
    checksum    text NOT NULL,                   -- sha256 of the raw bytes + class + client
    chunk_count integer NOT NULL DEFAULT 0,
    ingested_by text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chunks (
    id              bigserial PRIMARY KEY,
    document_id     bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position        integer NOT NULL,
    heading         text NOT NULL DEFAULT '',    -- "Titre > Section > Sous-section"
    text            text NOT NULL,
    citation        text NOT NULL,               -- stable while the passage is unchanged
    embedding       vector,
    embedding_model text,
    embedding_dim   integer,
    tsv             tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('widip_french', heading), 'A') ||
                        setweight(to_tsvector('widip_french', text), 'B')) STORED,
    UNIQUE (document_id, position)
);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_citation ON chunks (citation);
CREATE INDEX chunks_model ON chunks (embedding_model, embedding_dim);
-- One HNSW index per dimension in use (pgvector needs a fixed dimension to index): 300 for the
-- default spaCy fr_core_news_md vectors, 768 for nomic-embed-text and most Ollama embedders.
CREATE INDEX chunks_hnsw_300 ON chunks USING hnsw ((embedding::vector(300)) vector_cosine_ops)
    WHERE embedding_dim = 300;
CREATE INDEX chunks_hnsw_768 ON chunks USING hnsw ((embedding::vector(768)) vector_cosine_ops)
    WHERE embedding_dim = 768;

CREATE TABLE conversations (
    id               uuid PRIMARY KEY,
    owner_user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title            text NOT NULL DEFAULT '',
    summary          text NOT NULL DEFAULT '',   -- running summary of the turns no longer sent verbatim
    entities         jsonb NOT NULL DEFAULT '{}'::jsonb,  -- last ticket, device, login named
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner ON conversations (owner_user_id, last_activity_at DESC);
CREATE INDEX conversations_activity ON conversations (last_activity_at);

CREATE TABLE conversation_messages (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    session_id      uuid,
    citations       jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_messages_conv ON conversation_messages (conversation_id, id);
CREATE UNIQUE INDEX conversation_messages_turn ON conversation_messages (session_id, role)
    WHERE session_id IS NOT NULL;
