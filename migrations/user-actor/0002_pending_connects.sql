-- Connects in progress: one row per authorize URL handed out, consumed by the callback.
-- `nonce` is named in the signed OAuth state; deleting the row is what makes a state
-- single use. The PKCE verifier is sealed like a token.
CREATE TABLE pending_connects (
  nonce          TEXT PRIMARY KEY,
  app_type       TEXT NOT NULL,
  code_verifier  TEXT NOT NULL,
  return_to      TEXT NOT NULL,
  expires_at     INTEGER NOT NULL
);
