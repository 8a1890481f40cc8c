-- Installation webhook deliveries already handled, by `X-GitHub-Delivery`, with the summary
-- they answered: a redelivery gets the same answer and changes nothing. Forgotten after 30
-- days (purged when a new delivery is recorded).
CREATE TABLE deliveries (
  delivery_id  TEXT PRIMARY KEY,
  outcome      TEXT NOT NULL,                -- JSON: {lookups, tokens}
  received_at  INTEGER NOT NULL              -- epoch ms, broker's clock
);
