-- Whose token a capability's proxied requests carry (src/contract.ts CapabilityIdentity):
-- 'user' (every capability issued before this migration), 'app' (the App's installation
-- token) or 'user_or_app'. A capability that starts out as the App has generation '' (no
-- generation is empty), so it never lends a user connection, not even one made later.
ALTER TABLE capabilities ADD COLUMN identity TEXT NOT NULL DEFAULT 'user' CHECK (identity IN ('user', 'app', 'user_or_app'));
