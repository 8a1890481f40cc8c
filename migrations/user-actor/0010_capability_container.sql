-- The container a capability is bound to (src/proxy/capability-token.ts, `gcapc1`): redeemed only
-- through the egress handler of that container. NULL: an unbound capability (every row before this).
ALTER TABLE capabilities ADD COLUMN container_id TEXT;
