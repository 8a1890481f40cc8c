-- The user's connections, one row per GitHub App (appType).
-- Tokens are stored sealed (AES-256-GCM, see src/crypto.ts); all times are epoch
-- milliseconds, token expiries on GitHub's clock.
CREATE TABLE connections (
  app_type                  TEXT PRIMARY KEY,
  status                    TEXT NOT NULL CHECK (status IN ('connected', 'revoked', 'reconnect_required')),
  reason                    TEXT,
  github_user_id            TEXT NOT NULL,
  github_login              TEXT NOT NULL,
  github_name               TEXT,
  access_token              TEXT,
  access_token_expires_at   INTEGER,
  refresh_token             TEXT,
  refresh_token_expires_at  INTEGER,
  connected_at              INTEGER NOT NULL,
  updated_at                INTEGER NOT NULL,
  revoked_at                INTEGER,
  -- Bumped on every write: a refresh that finds it changed after its GitHub call knows
  -- another writer (reconnect, disconnect, revocation) came first, and yields to it.
  version                   INTEGER NOT NULL
);

-- Facts about the object itself (the platform user id it belongs to).
CREATE TABLE meta (
  key    TEXT PRIMARY KEY,
  value  TEXT NOT NULL
);
