/**
 * The internal API's operations, transport-free: validate the input, call the user's actor,
 * return a contract result. The HTTP routes (`routes.ts`) and the RPC entrypoint
 * (`index.ts`, `BrokerApi`) are both thin shells over these functions, so a service-binding
 * caller and an HTTP caller get exactly the same behaviour.
 */
import { parseTokenScope } from "./actor/scoped-tokens";
import type { TokenInput } from "./actor/user-actor";
import { callActor, userActor } from "./actors";
import { withConfig, type AppConfig, type BrokerConfig } from "./config";
import {
  failure,
  rfc3339,
  type AuditPage,
  type CapabilityGrant,
  type ConnectConfirmed,
  type ConnectionView,
  type ConnectStarted,
  type Disconnected,
  type Failure,
  type TokenResult,
  type UserDeleted,
  type UserTokenResult,
} from "./contract";
import { INVALID_TICKET } from "./failures";
import { issueWithIdentity, parseCapabilityIdentity } from "./installations/capability-identity";
import { fallBackToApp, parseFallback } from "./installations/fallback";
import { authorizeUrl, checkReturnTo, signState } from "./oauth";
import { parsePushPolicy } from "./proxy/ref-policy";
import { parseRepositoryFor, providerOf } from "./providers";
import { parseAppType, parseContainerId, parseMinValidity, parsePermission, parseSessionId, parseUserId } from "./validate";
import { ticketOwner } from "./connect-ticket";

/** `GET /connection` answers the view with `ok: true` added, so every result is discriminated. */
export type ConnectionResult = ({ ok: true } & ConnectionView) | Failure;

/** `POST /v1/users/{userId}/token` (with `fallback: "app"`, see src/installations/fallback.ts). */
export function getToken(env: Env, userId: unknown, body: unknown): Promise<UserTokenResult> {
  return withConfig(env, async (config) => {
    const input = parseTokenInput(config, userId, body);
    if (!input.ok) return input;
    const provider = providerOf(config, config.apps.get(input.value.appType)!);
    const scope = parseTokenScope(asObject(body).scope, asObject(body).permissions);
    if (!scope.ok) return scope;
    if (scope.value && !provider.scopedTokens) return failure("invalid_request", 'scope "repository" is a GitHub App feature');
    const fallback = parseFallback(asObject(body).fallback);
    if (!fallback.ok) return fallback;
    if (fallback.value && !provider.installations) return failure("invalid_request", 'fallback "app" is a GitHub App feature');
    const value = scope.value ? { ...input.value, scope: scope.value } : input.value;
    const result = await callActor(async (): Promise<TokenResult> => await userActor(env, value.userId).token(value));
    // ---- installation-token fallback (src/installations/fallback.ts) ----
    if (!result.ok && fallback.value === "app") return fallBackToApp(env, input.value, result);
    // ----
    return result;
  });
}

/** `POST /v1/users/{userId}/token/rejected`. */
export function reportRejectedToken(env: Env, userId: unknown, body: unknown): Promise<TokenResult> {
  return withConfig(env, async (config) => {
    const fields = asObject(body);
    const who = parseUserAndApp(config, userId, fields.appType);
    if (!who.ok) return who;
    if (typeof fields.token !== "string" || fields.token.length === 0 || fields.token.length > 512) {
      return failure("invalid_request", "token must be the access token the provider (GitHub or GitLab) refused");
    }
    const token = fields.token;
    return callActor(
      async (): Promise<TokenResult> => await userActor(env, who.userId).rejected({ userId: who.userId, appType: who.app.appType, token }),
    );
  });
}

/** `GET /v1/users/{userId}/connection?appType=`. */
export function getConnection(env: Env, userId: unknown, appType: unknown): Promise<ConnectionResult> {
  return withConfig(env, async (config) => {
    const who = parseUserAndApp(config, userId, appType);
    if (!who.ok) return who;
    return callActor(async () => ({
      ok: true as const,
      ...(await userActor(env, who.userId).connection({ userId: who.userId, appType: who.app.appType })),
    }));
  });
}

/** `POST /v1/users/{userId}/connect`: the authorize URL to send the user's browser to. */
export function startConnect(env: Env, userId: unknown, body: unknown): Promise<ConnectStarted | Failure> {
  return withConfig(env, async (config) => {
    const fields = asObject(body);
    const who = parseUserAndApp(config, userId, fields.appType);
    if (!who.ok) return who;
    const returnTo = checkReturnTo(config, fields.returnTo);
    if (!returnTo) return failure("invalid_request", "returnTo must be an absolute URL on an origin in ALLOWED_RETURN_ORIGINS");
    const selectAccount = fields.selectAccount ?? false;
    if (typeof selectAccount !== "boolean") return failure("invalid_request", "selectAccount must be true or false");
    return callActor(async () => {
      const begun = await userActor(env, who.userId).beginConnect({ userId: who.userId, appType: who.app.appType, returnTo });
      if (!begun.ok) return begun;
      const state = await signState(env.STATE_SIGNING_KEY, {
        userId: who.userId,
        appType: who.app.appType,
        returnTo,
        nonce: begun.nonce,
        expiresAt: Math.floor(begun.expiresAt / 1000),
      });
      return {
        ok: true as const,
        authorizeUrl: authorizeUrl(config, who.app, state, begun.codeChallenge, selectAccount),
        expiresAt: rfc3339(begun.expiresAt),
      };
    });
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
    const user = parseUserId(userId);
    if (!user.ok) return user;
    const ticket = asObject(body).ticket;
    const owner = typeof ticket === "string" ? await ticketOwner(env.STATE_SIGNING_KEY, ticket) : null;
    if (owner === null) return INVALID_TICKET;
    if (owner !== user.value) {
      // Refused, and spent for its owner too (src/connect-ticket.ts): a leaked redirect URL is
      // worthless once any web app session has presented it.
      const burnt = await callActor(async () => await userActor(env, owner).burnTicket({ userId: owner, ticket: ticket as string }));
      return burnt ?? INVALID_TICKET;
    }
    return callActor(async (): Promise<ConnectConfirmed | Failure> => await userActor(env, user.value).confirmConnect({ userId: user.value, ticket: ticket as string }));
  });
}

/** `DELETE /v1/users/{userId}/connection?appType=`. */
export function disconnect(env: Env, userId: unknown, appType: unknown): Promise<Disconnected | Failure> {
  return withConfig(env, async (config) => {
    const who = parseUserAndApp(config, userId, appType);
    if (!who.ok) return who;
    return callActor(async () => {
      const done = await userActor(env, who.userId).disconnect({ userId: who.userId, appType: who.app.appType });
      return done.ok ? { ok: true as const, status: "not_connected" as const, githubGrant: done.githubGrant } : done;
    });
  });
}

/** `DELETE /v1/users/{userId}`: the account-deletion path. */
export function deleteUser(env: Env, userId: unknown): Promise<UserDeleted | Failure> {
  return withConfig(env, async () => {
    const user = parseUserId(userId);
    if (!user.ok) return user;
    return callActor(async () => {
      const done = await userActor(env, user.value).deleteUser({ userId: user.value });
      return done.ok ? { ok: true as const, deleted: true as const, githubGrants: done.githubGrants } : done;
    });
  });
}

/** `GET /v1/users/{userId}/audit?limit=&before=`: the user's audit trail, newest first. */
export function getAudit(env: Env, userId: unknown, limit: unknown, before: unknown): Promise<AuditPage | Failure> {
  return withConfig(env, async () => {
    const user = parseUserId(userId);
    if (!user.ok) return user;
    const n = limit === undefined || limit === null || limit === "" ? 50 : Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > 500) return failure("invalid_request", "limit must be an integer from 1 to 500");
    const b = before === undefined || before === null || before === "" ? null : Number(before);
    if (b !== null && (!Number.isSafeInteger(b) || b < 1)) return failure("invalid_request", "before must be the nextBefore of a previous page");
    return callActor(async (): Promise<AuditPage | Failure> => await userActor(env, user.value).audit({ userId: user.value, limit: n, before: b }));
  });
}

/** `POST /v1/users/{userId}/capabilities`: a session capability for one repository. */
export function issueCapability(env: Env, userId: unknown, body: unknown): Promise<CapabilityGrant | Failure> {
  return withConfig(env, async (config) => {
    const input = parseTokenInput(config, userId, body);
    if (!input.ok) return input;
    const fields = asObject(body);
    const session = parseSessionId(fields.sessionId);
    if (!session.ok) return session;
    const ttl = fields.ttlSeconds ?? 3600;
    if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 1 || ttl > 28_800) {
      return failure("invalid_request", "ttlSeconds must be an integer from 1 to 28800");
    }
    const policy = parsePushPolicy(fields.branches, fields.allowDelete);
    if (!policy.ok) return policy;
    const app = config.apps.get(input.value.appType)!;
    const identity = parseCapabilityIdentity(fields.identity, app, providerOf(config, app));
    if (!identity.ok) return identity;
    const containerId = parseContainerId(fields.containerId);
    if (!containerId.ok) return containerId;
    const issue = { ...input.value, sessionId: session.value, ttlSeconds: ttl, policy: policy.value, identity: identity.value, containerId: containerId.value };
    const actor = () => userActor(env, issue.userId);
    return issueWithIdentity(
      env,
      issue,
      () => callActor(async (): Promise<CapabilityGrant | Failure> => await actor().issueCapability(issue)),
      (app) => callActor(async (): Promise<CapabilityGrant | Failure> => await actor().issueCapabilityAsApp({ ...issue, app })),
    );
  });
}

/** `DELETE /v1/users/{userId}/capabilities/{sessionId}`. */
export function revokeCapabilities(env: Env, userId: unknown, sessionId: unknown): Promise<{ ok: true; revoked: number } | Failure> {
  return withConfig(env, async () => {
    const user = parseUserId(userId);
    if (!user.ok) return user;
    const session = parseSessionId(sessionId);
    if (!session.ok) return session;
    return callActor(async () => await userActor(env, user.value).revokeCapabilities({ userId: user.value, sessionId: session.value }));
  });
}

// ---- helpers ----

function parseTokenInput(config: BrokerConfig, userId: unknown, body: unknown): { ok: true; value: TokenInput } | Failure {
  const fields = asObject(body);
  const who = parseUserAndApp(config, userId, fields.appType);
  if (!who.ok) return who;
  const repository = parseRepositoryFor(config, who.app, fields.repository);
  if (!repository.ok) return repository;
  const permission = parsePermission(fields.permission);
  if (!permission.ok) return permission;
  const minValidity = parseMinValidity(fields.minValiditySeconds);
  if (!minValidity.ok) return minValidity;
  return {
    ok: true,
    value: {
      userId: who.userId,
      appType: who.app.appType,
      repository: repository.value,
      permission: permission.value,
      minValiditySeconds: minValidity.value,
    },
  };
}

/** The user id and App every per-user operation starts from. */
function parseUserAndApp(config: BrokerConfig, userId: unknown, appType: unknown): { ok: true; userId: string; app: AppConfig } | Failure {
  const user = parseUserId(userId);
  if (!user.ok) return user;
  const app = parseAppType(config, appType);
  if (!app.ok) return app;
  return { ok: true, userId: user.value, app: app.value };
}

function asObject(body: unknown): Record<string, unknown> {
  return body && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}
