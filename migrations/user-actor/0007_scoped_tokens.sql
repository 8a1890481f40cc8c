-- Repository-scoped user tokens (src/actor/scoped-tokens.ts), minted with
-- POST /applications/{client_id}/token/scoped. One per App, repository (lower case),
-- permissions (canonical JSON, '' for the user token's own) and generation; `version` is the
-- connection pair it was minted from. Sealed under the field
-- `scoped:<generation>:<repository>:<permissions>`. Rows of an ended generation are revoked
-- at GitHub one by one, then deleted.
CREATE TABLE scoped_tokens (
  app_type     TEXT NOT NULL,
  repository   TEXT NOT NULL,
  permissions  TEXT NOT NULL,
  generation   TEXT NOT NULL,
  version      INTEGER NOT NULL,
  token        TEXT NOT NULL,
  expires_at   INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (app_type, repository, permissions, generation)
);
