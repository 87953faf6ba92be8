-- Full-text search over a growing corpus: GIN's "fast update" queues new entries in a pending list
-- that every search scans in full until a vacuum merges it (8 ms of a 10 ms query at 20,000 chunks
-- after an ingestion). Documents arrive a few at a time, so entries go straight into the index.
SET LOCAL lock_timeout = '10s';  -- never queue searches behind a long transaction: fail the deploy, retry
ALTER INDEX chunks_tsv SET (fastupdate = off);
SELECT gin_clean_pending_list('chunks_tsv'::regclass);
