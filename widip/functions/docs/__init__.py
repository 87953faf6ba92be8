"""The documentation WIBOT answers from: ingestion, chunking, embeddings and hybrid retrieval (RAG)."""
