/**
 * The token vault: sealing and opening the values a user's actor stores, with the seal
 * context (user, App, field) written down once. See src/crypto.ts for the format.
 *
 * Fields in use:
 * - `access_token`, `refresh_token`: a connection's pair (context: the user id).
 * - `pkce:<nonce>`: a pending connect's PKCE verifier.
 * - `ticket:<ticket hash>:code`, `ticket:<ticket hash>:verifier`: a connect awaiting confirmation.
 * - `revocation:<id>:access_token|refresh_token`: a grant still to be revoked; its context
 *   names the Durable Object's own id instead of the user, so it outlives an account deletion
 *   without naming the user (see grant-revoker.ts).
 */
import { openSealed, seal, sealedWithOldKey, type Keyring, type Opened } from "../crypto";
import type { TokenSet } from "../github";
import type { ConnectionRow, SealedPair } from "./connection-store";

export class TokenVault {
  /**
   * The last opened access token per App, keyed by its sealed form: the hot path skips
   * AES-GCM while the stored value is unchanged. Memory only, never storage.
   */
  readonly #opened = new Map<string, { sealed: string; token: string }>();

  seal(keyring: Keyring, owner: string, appType: string, field: string, value: string): Promise<string> {
    return seal(keyring, value, { userId: owner, appType, field });
  }

  open(keyring: Keyring, owner: string, appType: string, field: string, sealed: string): Promise<Opened> {
    return openSealed(keyring, sealed, { userId: owner, appType, field });
  }

  async sealPair(keyring: Keyring, owner: string, appType: string, tokens: TokenSet, prefix = ""): Promise<SealedPair> {
    const [access, refresh] = await Promise.all([
      this.seal(keyring, owner, appType, `${prefix}access_token`, tokens.accessToken),
      tokens.refreshToken === null ? null : this.seal(keyring, owner, appType, `${prefix}refresh_token`, tokens.refreshToken),
    ]);
    return {
      accessToken: access,
      accessTokenExpiresAt: tokens.accessTokenExpiresAt,
      refreshToken: refresh,
      refreshTokenExpiresAt: tokens.refreshTokenExpiresAt,
    };
  }

  /** A connection's access token, from memory when the sealed value has not changed. */
  async openAccess(keyring: Keyring, userId: string, row: ConnectionRow): Promise<Opened> {
    const cached = this.#opened.get(row.app_type);
    if (cached && cached.sealed === row.access_token) return { ok: true, value: cached.token };
    const opened = await this.open(keyring, userId, row.app_type, "access_token", row.access_token!);
    if (opened.ok) this.#opened.set(row.app_type, { sealed: row.access_token!, token: opened.value });
    return opened;
  }

  /** Remembers a token just sealed, so the next {@link openAccess} needs no decryption. */
  remember(appType: string, sealed: string, token: string): void {
    this.#opened.set(appType, { sealed, token });
  }

  /** Whether any of the values was sealed under a key other than the primary. */
  needsReseal(keyring: Keyring, ...values: (string | null)[]): boolean {
    return values.some((v) => v !== null && sealedWithOldKey(keyring, v));
  }

  forget(): void {
    this.#opened.clear();
  }
}
