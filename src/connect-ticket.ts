/**
 * Connect tickets (contract: "Two-phase connect"): what the callback hands the browser and
 * the web app's server presents to `connect/confirm`.
 *
 * `ticket` = `base64url(userId) "." base64url(32 random bytes) "." base64url(HMAC-SHA256)`,
 * the MAC under a key derived from `STATE_SIGNING_KEY` for this purpose only, over the first
 * two parts. The random part is the secret (the owner's actor stores only a SHA-256 of the
 * whole ticket); the user id, which the OAuth `state` already carries, is there so that a
 * confirm under *another* user id can still reach the owner's actor and spend the ticket
 * there ("any confirm that presents it spends it, refused or not"). The MAC keeps anyone
 * from making the Worker wake an actor of their choosing with a made-up ticket: only a
 * ticket the broker issued names an actor, and spending it there deletes, never creates.
 */
import { base64urlDecode, base64urlEncode, derivedHmacKey, randomString } from "./crypto";

const LABEL = "connect-ticket v1";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** What `connect/confirm` accepts before looking any further (three base64url parts). */
export const TICKET_SHAPE = /^[A-Za-z0-9_-]{2,172}\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/;

function macKey(signingKey: string | undefined): Promise<CryptoKey> {
  // The Worker checked the same key when it verified the state; without it nothing gets here.
  return derivedHmacKey(signingKey ?? "", LABEL);
}

/** A new ticket for `userId`'s connect. */
export async function mintTicket(signingKey: string | undefined, userId: string): Promise<string> {
  const body = `${base64urlEncode(enc.encode(userId))}.${randomString(32)}`;
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await macKey(signingKey), enc.encode(body)));
  return `${body}.${base64urlEncode(mac)}`;
}

/** The user a ticket was issued to, when the broker issued it (MAC checked in constant time); else `null`. */
export async function ticketOwner(signingKey: string | undefined, ticket: string): Promise<string | null> {
  if (!TICKET_SHAPE.test(ticket)) return null;
  const [owner, random, mac] = ticket.split(".") as [string, string, string];
  try {
    const ok = await crypto.subtle.verify("HMAC", await macKey(signingKey), base64urlDecode(mac), enc.encode(`${owner}.${random}`));
    return ok ? dec.decode(base64urlDecode(owner)) : null;
  } catch {
    return null; // not canonical base64url
  }
}
