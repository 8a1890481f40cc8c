-- Connection events waiting to be delivered to EVENTS_URL, written in the same synchronous
-- step as the state change they describe (so a crash cannot lose one), delivered oldest first
-- from the alarm with backoff, dropped after 24 hours undelivered. `body` is the exact JSON
-- that is signed and sent; `id` is kept across retries.
CREATE TABLE event_outbox (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  id               TEXT NOT NULL,
  body             TEXT NOT NULL,
  created_at       INTEGER NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL
);

-- The user's audit trail: what was done with their identity. Kept 90 days and at most
-- 10,000 entries; deleted with the account. `detail` is JSON with no token, code or secret.
CREATE TABLE audit (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  at        INTEGER NOT NULL,
  kind      TEXT NOT NULL,
  app_type  TEXT,
  detail    TEXT NOT NULL,
  count     INTEGER NOT NULL DEFAULT 1
);
