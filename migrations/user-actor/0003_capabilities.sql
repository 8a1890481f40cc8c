-- Session capabilities (see src/capabilities.ts): what an agent session holds instead of
-- the user's token. Only a SHA-256 of the capability's secret part is stored.
CREATE TABLE capabilities (
  secret_hash     TEXT PRIMARY KEY,
  session_id      TEXT NOT NULL,
  app_type        TEXT NOT NULL,
  repository      TEXT NOT NULL,
  permission      TEXT NOT NULL CHECK (permission IN ('push', 'pull')),
  -- The connection it was issued under: once that connection is revoked, disconnected or
  -- replaced (a reconnect has a new connected_at), the capability is dead.
  github_user_id  TEXT NOT NULL,
  connected_at    INTEGER NOT NULL,
  issued_at       INTEGER NOT NULL,
  expires_at      INTEGER NOT NULL
);
CREATE INDEX capabilities_by_session ON capabilities (session_id);
