-- The installation actor (src/installations/actor.ts): one per App installation, addressed
-- by the account the App is installed on. Everything here is a cache of GitHub's answers:
-- dropping any of it costs one more GitHub call, never a user's connection.

-- Repository -> installation, as `GET /repos/{owner}/{repo}/installation` answered.
CREATE TABLE lookups (
  repository      TEXT PRIMARY KEY,          -- lowercase owner/name
  installation_id TEXT,                      -- NULL: the App is not installed on it
  suspended       INTEGER NOT NULL DEFAULT 0,
  looked_up_at    INTEGER NOT NULL,          -- epoch ms, broker's clock
  expires_at      INTEGER NOT NULL
);

-- Installation tokens, one per (repository, permissions), sealed (AES-GCM, AAD bound to the
-- installation and the cache key).
CREATE TABLE tokens (
  cache_key       TEXT PRIMARY KEY,          -- lowercase owner/name, a space, canonical permissions JSON
  repository      TEXT NOT NULL,             -- lowercase owner/name
  installation_id TEXT NOT NULL,
  permissions     TEXT NOT NULL,             -- JSON, as GitHub granted them
  token           TEXT NOT NULL,             -- sealed
  expires_at      INTEGER NOT NULL,          -- broker's receipt time + GitHub's remaining life
  minted_at       INTEGER NOT NULL
);
CREATE INDEX tokens_by_repository ON tokens (repository);
