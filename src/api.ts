/**
 * The internal API's operations, transport-free. Each entry here is parse → operate: the
 * request's one parser (http/requests.ts) turns the raw path, query and body into validated
 * input, and the operation takes only that, calls the user's actor and returns a contract
 * result. The HTTP routes (`http/routes.ts`) and the RPC entrypoint (`index.ts`, `BrokerApi`)
 * are both thin shells over these entries, so a service-binding caller and an HTTP caller get
 * exactly the same behaviour.
 */
import { callActor, userActor } from "./actors";
import { withConfig, type BrokerConfig } from "./config";
import {
  rfc3339,
  type AuditPage,
  type AuditQuery,
  type CapabilityGrant,
  type ConnectConfirmed,
  type ConnectionView,
  type ConnectStarted,
  type Disconnected,
  type Failure,
  type TokenGrant,
  type TokenResult,
  type UserDeleted,
  type UserTokenResult,
} from "./contract";
import { INVALID_TICKET } from "./failures";
import { parseJsonText, type JsonText } from "./json-text";
import {
  parseAuditRequest,
  parseCapabilityRequest,
  parseCapabilityRevocation,
  parseConnectConfirmRequest,
  parseConnectionRequest,
  parseConnectRequest,
  parseRejectedTokenReport,
  parseUserRequest,
  parseUserTokenRequest,
  type CapabilityInput,
  type ConfirmInput,
  type ConnectInput,
} from "./http/requests";
import { issueWithIdentity } from "./installations/capability-identity";
import { fallBackToApp } from "./installations/fallback";
import { authorizeUrl, signState } from "./oauth";
import { ticketOwner } from "./connect-ticket";

/** `GET /connection` answers the view with `ok: true` added, so every result is discriminated. */
export type ConnectionResult = ({ ok: true } & ConnectionView) | Failure;

/** What {@link getToken} answers: the user's grant as the actor's JSON text, or another result. */
export type UserTokenAnswer = JsonText<TokenGrant> | UserTokenResult;

/**
 * `POST /v1/users/{userId}/token` (with `fallback: "app"`, see src/installations/fallback.ts).
 * A user grant stays the JSON text the actor sent (the HTTP answer as it is); RPC callers
 * parse it (`index.ts`).
 */
export function getToken(env: Env, userId: unknown, body: unknown): Promise<UserTokenAnswer> {
  return withConfig(env, async (config) => {
    const input = parseUserTokenRequest(config, userId, body);
    if (!input.ok) return input;
    const { value } = input;
    const result = await callActor(async () => await userActor(env, value.userId).tokenText(value));
    if (typeof result === "string") return result;
    return value.fallback === "app" ? fallBackToApp(env, value, result) : result;
  });
}

/** {@link getToken}'s answer as the contract's result. */
export function userTokenResult(answer: UserTokenAnswer): UserTokenResult {
  return typeof answer === "string" ? parseJsonText(answer) : answer;
}

/** `POST /v1/users/{userId}/token/rejected`. */
export function reportRejectedToken(env: Env, userId: unknown, body: unknown): Promise<TokenResult> {
  return withConfig(env, async (config) => {
    const input = parseRejectedTokenReport(config, userId, body);
    if (!input.ok) return input;
    return callActor(async (): Promise<TokenResult> => await userActor(env, input.value.userId).rejected(input.value));
  });
}

/** `GET /v1/users/{userId}/connection?appType=`. */
export function getConnection(env: Env, userId: unknown, appType: unknown): Promise<ConnectionResult> {
  return withConfig(env, async (config) => {
    const input = parseConnectionRequest(config, userId, appType);
    if (!input.ok) return input;
    return callActor(async () => ({ ok: true as const, ...(await userActor(env, input.value.userId).connection(input.value)) }));
  });
}

/** `POST /v1/users/{userId}/connect`: the authorize URL to send the user's browser to. */
export function startConnect(env: Env, userId: unknown, body: unknown): Promise<ConnectStarted | Failure> {
  return withConfig(env, async (config) => {
    const input = parseConnectRequest(config, userId, body);
    return input.ok ? connect(env, config, input.value) : input;
  });
}

function connect(env: Env, config: BrokerConfig, input: ConnectInput): Promise<ConnectStarted | Failure> {
  const { userId, appType, returnTo } = input;
  return callActor(async () => {
    const begun = await userActor(env, userId).beginConnect({ userId, appType, returnTo });
    if (!begun.ok) return begun;
    const state = await signState(env.STATE_SIGNING_KEY, { userId, appType, returnTo, nonce: begun.nonce, expiresAt: Math.floor(begun.expiresAt / 1000) });
    return {
      ok: true as const,
      authorizeUrl: authorizeUrl(config, config.apps.get(appType)!, state, begun.codeChallenge, input.selectAccount),
      expiresAt: rfc3339(begun.expiresAt),
    };
  });
}

/**
 * `POST /v1/users/{userId}/connect/confirm {ticket}`: the web app's server confirms the
 * connect that came back to a browser signed in as `userId`. The user id must come from the
 * web app's session for that browser, never from the URL: that is what makes a connect
 * started by someone else fail here with `invalid_ticket`.
 */
export function confirmConnect(env: Env, userId: unknown, body: unknown): Promise<ConnectConfirmed | Failure> {
  return withConfig(env, async () => {
    const input = parseConnectConfirmRequest(userId, body);
    return input.ok ? confirm(env, input.value) : input;
  });
}

async function confirm(env: Env, input: ConfirmInput): Promise<ConnectConfirmed | Failure> {
  const { userId, ticket } = input;
  const owner = await ticketOwner(env.STATE_SIGNING_KEY, ticket);
  if (owner === null) return INVALID_TICKET;
  if (owner !== userId) {
    // Refused, and spent for its owner too (src/connect-ticket.ts): a leaked redirect URL is
    // worthless once any web app session has presented it.
    const burnt = await callActor(async () => await userActor(env, owner).burnTicket({ userId: owner, ticket }));
    return burnt ?? INVALID_TICKET;
  }
  return callActor(async (): Promise<ConnectConfirmed | Failure> => await userActor(env, userId).confirmConnect(input));
}

/** `DELETE /v1/users/{userId}/connection?appType=`. */
export function disconnect(env: Env, userId: unknown, appType: unknown): Promise<Disconnected | Failure> {
  return withConfig(env, async (config) => {
    const input = parseConnectionRequest(config, userId, appType);
    if (!input.ok) return input;
    return callActor(async () => {
      const done = await userActor(env, input.value.userId).disconnect(input.value);
      return done.ok ? { ok: true as const, status: "not_connected" as const, githubGrant: done.githubGrant } : done;
    });
  });
}

/** `DELETE /v1/users/{userId}`: the account-deletion path. */
export function deleteUser(env: Env, userId: unknown): Promise<UserDeleted | Failure> {
  return withConfig(env, async () => {
    const input = parseUserRequest(userId);
    if (!input.ok) return input;
    return callActor(async () => {
      const done = await userActor(env, input.value.userId).deleteUser(input.value);
      return done.ok ? { ok: true as const, deleted: true as const, githubGrants: done.githubGrants } : done;
    });
  });
}

/** `GET /v1/users/{userId}/audit?limit=&before=`: the user's audit trail, newest first. */
export function getAudit(env: Env, userId: unknown, query: { readonly [K in keyof AuditQuery]?: unknown }): Promise<AuditPage | Failure> {
  return withConfig(env, async () => {
    const input = parseAuditRequest(userId, query);
    if (!input.ok) return input;
    return callActor(async (): Promise<AuditPage | Failure> => await userActor(env, input.value.userId).audit(input.value));
  });
}

/** `POST /v1/users/{userId}/capabilities`: a session capability for one repository. */
export function issueCapability(env: Env, userId: unknown, body: unknown): Promise<CapabilityGrant | Failure> {
  return withConfig(env, async (config) => {
    const input = parseCapabilityRequest(config, userId, body);
    return input.ok ? capability(env, input.value) : input;
  });
}

function capability(env: Env, input: CapabilityInput): Promise<CapabilityGrant | Failure> {
  const actor = () => userActor(env, input.userId);
  return issueWithIdentity(
    env,
    input,
    () => callActor(async (): Promise<CapabilityGrant | Failure> => await actor().issueCapability(input)),
    (app) => callActor(async (): Promise<CapabilityGrant | Failure> => await actor().issueCapabilityAsApp({ ...input, app })),
  );
}

/** `DELETE /v1/users/{userId}/capabilities/{sessionId}`. */
export function revokeCapabilities(env: Env, userId: unknown, sessionId: unknown): Promise<{ ok: true; revoked: number } | Failure> {
  return withConfig(env, async () => {
    const input = parseCapabilityRevocation(userId, sessionId);
    if (!input.ok) return input;
    return callActor(async () => await userActor(env, input.value.userId).revokeCapabilities(input.value));
  });
}
