-- Whose token a capability's proxied requests carry (src/contract.ts CapabilityIdentity):
-- 'user' (every capability issued before this migration), 'app' (the App's installation
-- token) or 'user_or_app'. A capability that starts out as the App has generation '' (no
-- generation is empty), so it never lends a user connection, not even one made later.
-- co_author is the user's identity as JSON {name, email}, for a Co-authored-by: trailer.
ALTER TABLE capabilities ADD COLUMN identity TEXT NOT NULL DEFAULT 'user' CHECK (identity IN ('user', 'app', 'user_or_app'));
ALTER TABLE capabilities ADD COLUMN co_author TEXT;
