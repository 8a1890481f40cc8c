-- One identity-index object per GitHub user id: which platform users are connected to
-- this GitHub account, per App. A link may be stale (the user since connected another
-- account or disconnected); the user's actor recognises and ignores those.
CREATE TABLE links (
  app_type   TEXT NOT NULL,
  user_id    TEXT NOT NULL,
  linked_at  INTEGER NOT NULL,
  PRIMARY KEY (app_type, user_id)
);

-- Webhook deliveries already handled for this GitHub user (X-GitHub-Delivery), so a
-- redelivery answers the same and does nothing twice. Pruned after 30 days.
CREATE TABLE deliveries (
  delivery_id   TEXT PRIMARY KEY,
  outcome       TEXT NOT NULL,
  received_at   INTEGER NOT NULL
);
