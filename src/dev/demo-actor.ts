/**
 * `DemoUserActor`: the production {@link UserActor} plus the one hook the local demo needs,
 * "expire the access token now", so a newcomer can watch a refresh without waiting eight
 * hours. It lives here, in the dev-only entry (src/dev/entry.ts, used by `npm start`), so
 * the production class has no demo method an RPC caller could reach.
 */
import { forgetConnectionRows } from "../actor/connection-store";
import { UserActor } from "../actor/user-actor";
import { failure, type Failure } from "../contract";
import { hasSchema } from "../schema";

export class DemoUserActor extends UserActor {
  /**
   * Marks the stored access token of `appType` as expired (the broker's view only: GitHub
   * still accepts it), so the next token request refreshes. `not_connected` when there is no
   * connected row, so the demo never claims an expiry that did not happen.
   */
  demoExpireAccessToken(input: { appType: string }): { ok: true } | Failure {
    const sql = this.ctx.storage.sql;
    if (!hasSchema(this.ctx.storage)) return failure("not_connected", "Nothing to expire: not connected.");
    const written = sql.exec(
      "UPDATE connections SET access_token_expires_at = ? WHERE app_type = ? AND status = 'connected' AND access_token IS NOT NULL",
      Date.now() - 1000,
      input.appType,
    ).rowsWritten;
    forgetConnectionRows(sql);
    return written > 0 ? { ok: true } : failure("not_connected", "Nothing to expire: not connected.");
  }
}
