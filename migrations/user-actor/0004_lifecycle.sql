-- Generations: every confirmed connect starts a new generation, a random id that is never
-- reused (not after a disconnect, not after an account deletion wipes storage). Every
-- in-flight operation carries the generation (and `version`, the pair within it) it read,
-- and writes or hands out nothing once they changed. Rows from before this migration get
-- the empty generation, which no new connect can produce.
ALTER TABLE connections ADD COLUMN generation TEXT NOT NULL DEFAULT '';

-- Capabilities die with the generation they were issued under.
ALTER TABLE capabilities ADD COLUMN generation TEXT NOT NULL DEFAULT '';

-- Two-phase connect: the callback spends the state and leaves the code here, sealed with
-- its PKCE verifier, under a ticket only this user's actor knows (stored as a SHA-256).
-- `connect/confirm` with the ticket exchanges the code. Single use, 5 minutes.
CREATE TABLE connect_tickets (
  ticket_hash    TEXT PRIMARY KEY,
  app_type       TEXT NOT NULL,
  -- Sealed with field `ticket:<ticket_hash>:code` and `...:verifier`.
  code           TEXT NOT NULL,
  code_verifier  TEXT NOT NULL,
  expires_at     INTEGER NOT NULL
);

-- Grants the broker must still revoke at GitHub (GitHub could not be reached when the user
-- disconnected or was deleted, or the connection was replaced by another GitHub account).
-- Tokens are sealed under the field `revocation:<id>:access_token|refresh_token` with the
-- object's own id in place of the user id, so the row survives an account deletion without
-- naming the user. Retried from the alarm until GitHub confirms or both tokens expired.
CREATE TABLE pending_revocations (
  id                        TEXT PRIMARY KEY,
  app_type                  TEXT NOT NULL,
  access_token              TEXT NOT NULL,
  access_token_expires_at   INTEGER NOT NULL,
  refresh_token             TEXT,
  refresh_token_expires_at  INTEGER,
  attempts                  INTEGER NOT NULL DEFAULT 0,
  next_attempt_at           INTEGER NOT NULL,
  created_at                INTEGER NOT NULL
);
