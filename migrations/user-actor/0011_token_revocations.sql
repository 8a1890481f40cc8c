-- What a pending revocation ends: 'grant' (DELETE /applications/{client_id}/grant: every token
-- of the (App, account) authorization) or 'token' (DELETE /applications/{client_id}/token: that
-- one access token, e.g. a repository-scoped token minted from a generation that ended while
-- GitHub answered). A 'token' row holds no refresh token (src/actor/grant-revoker.ts).
ALTER TABLE pending_revocations ADD COLUMN scope TEXT NOT NULL DEFAULT 'grant';
