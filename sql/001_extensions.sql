-- pgvector first: the RAG tables (documents/chunks) need it, and failing here tells ops at once
-- that their PostgreSQL lacks the extension.
CREATE EXTENSION IF NOT EXISTS vector;
