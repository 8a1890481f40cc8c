-- The provider account whose grant a pending revocation ends (the connection's github_user_id),
-- or NULL where it is not known (a connect abandoned before it read the user; rows from before
-- this migration; every row once the account is deleted, since what outlives it names no one). GitHub has one grant per (App, account): once the same account is connected
-- again, revoking the old pair would revoke the new connection too (src/actor/grant-revoker.ts).
ALTER TABLE pending_revocations ADD COLUMN account TEXT;
