-- The push policy of a session capability (src/proxy/ref-policy.ts): the ref patterns it may
-- push to, as a JSON array (NULL: the default, every branch), and whether it may delete refs.
-- Capabilities issued before this migration get the default: every branch, no tag, no delete.
ALTER TABLE capabilities ADD COLUMN branches TEXT;
ALTER TABLE capabilities ADD COLUMN allow_delete INTEGER NOT NULL DEFAULT 0;
