/**
 * Every request of the internal API, parsed in one place: one parser per route, which the
 * route's `BrokerApi` RPC method shares, from the raw path, query and body to the validated
 * input its operation takes (../api.ts, ../installations/api.ts). Fields are checked in the
 * order the contract lists them; the first failure is the answer (./fields.ts has the field
 * parsers and their messages).
 *
 * The contract's request types (../contract.ts) are held to the parsers at compile time: a
 * parser reads the body only through its request type ({@link Body}), so it cannot read a
 * field the contract does not name, and {@link Agreement} fails `tsc` when a contract request
 * and its parsed form stop naming the same fields.
 */
import type { IssueInput } from "../actor/capabilities";
import type { TokenInput } from "../actor/user-actor";
import type { AppConfig, BrokerConfig } from "../config";
import {
  failure,
  type AuditQuery,
  type CapabilityRequest,
  type ConnectConfirmRequest,
  type ConnectRequest,
  type Failure,
  type InstallationTokenRequest,
  type Permission,
  type RejectedTokenReport,
  type TokenRequest,
} from "../contract";
import type { InstallationTokenInput } from "../installations/actor";
import { parsePushPolicy } from "../proxy/ref-policy";
import { parseRepositoryFor, providerOf } from "../providers";
import type { Parsed } from "../validate";
import {
  parseAppType,
  parseAuditBefore,
  parseAuditLimit,
  parseCapabilityIdentity,
  parseContainerId,
  parseFallback,
  parseInstallationPermissions,
  parseMinValidity,
  parsePermission,
  parseRejectedToken,
  parseReturnTo,
  parseSelectAccount,
  parseSessionId,
  parseTicket,
  parseTokenScope,
  parseTtlSeconds,
  parseUserId,
} from "./fields";

/** `POST /v1/users/{userId}/token`: what the user's actor takes, and `fallback` when asked. */
export type UserTokenInput = TokenInput & { fallback?: "app" };

/** `POST /v1/users/{userId}/token/rejected`. */
export interface RejectedTokenInput {
  userId: string;
  appType: string;
  token: string;
}

/** `GET` and `DELETE /v1/users/{userId}/connection?appType=`. */
export interface ConnectionInput {
  userId: string;
  appType: string;
}

/** `POST /v1/users/{userId}/connect`. */
export interface ConnectInput {
  userId: string;
  appType: string;
  /** Normalised, on an allowed origin. */
  returnTo: string;
  selectAccount: boolean;
}

/** `POST /v1/users/{userId}/connect/confirm`: the ticket is a string, its MAC not yet checked. */
export interface ConfirmInput {
  userId: string;
  ticket: string;
}

/** `DELETE /v1/users/{userId}`. */
export interface UserInput {
  userId: string;
}

/** `GET /v1/users/{userId}/audit?limit=&before=`. */
export interface AuditInput {
  userId: string;
  limit: number;
  before: number | null;
}

/** `POST /v1/users/{userId}/capabilities`: what the user's actor takes. */
export type CapabilityInput = { userId: string; appType: string } & IssueInput;

/** `DELETE /v1/users/{userId}/capabilities/{sessionId}`. */
export interface RevokeInput {
  userId: string;
  sessionId: string;
}

export type { InstallationTokenInput };

// ---- the parsers, one per route ----

export function parseUserTokenRequest(config: BrokerConfig, userId: unknown, body: unknown): Parsed<UserTokenInput> {
  const f = bodyOf<TokenRequest>(body);
  const who = parseRepositoryAccess(config, userId, f);
  if (!who.ok) return who;
  const minValidity = parseMinValidity(f.minValiditySeconds);
  if (!minValidity.ok) return minValidity;
  const scope = parseTokenScope(f.scope, f.permissions);
  if (!scope.ok) return scope;
  // The provider is asked only when a feature is: the plain request makes no client.
  if (scope.value && !providerOf(config, who.app).scopedTokens) return failure("invalid_request", 'scope "repository" is a GitHub App feature');
  const fallback = parseFallback(f.fallback);
  if (!fallback.ok) return fallback;
  if (fallback.value && !providerOf(config, who.app).installations) return failure("invalid_request", 'fallback "app" is a GitHub App feature');
  const value: UserTokenInput = {
    userId: who.userId,
    appType: who.app.appType,
    repository: who.repository,
    permission: who.permission,
    minValiditySeconds: minValidity.value,
  };
  if (scope.value) value.scope = scope.value;
  if (fallback.value) value.fallback = fallback.value;
  return { ok: true, value };
}

export function parseRejectedTokenReport(config: BrokerConfig, userId: unknown, body: unknown): Parsed<RejectedTokenInput> {
  const f = bodyOf<RejectedTokenReport>(body);
  const who = parseUserAndApp(config, userId, f.appType);
  if (!who.ok) return who;
  const token = parseRejectedToken(f.token);
  if (!token.ok) return token;
  return { ok: true, value: { userId: who.userId, appType: who.app.appType, token: token.value } };
}

/** `GET` and `DELETE` of a connection take the same input. */
export function parseConnectionRequest(config: BrokerConfig, userId: unknown, appType: unknown): Parsed<ConnectionInput> {
  const who = parseUserAndApp(config, userId, appType);
  return who.ok ? { ok: true, value: { userId: who.userId, appType: who.app.appType } } : who;
}

export function parseConnectRequest(config: BrokerConfig, userId: unknown, body: unknown): Parsed<ConnectInput> {
  const f = bodyOf<ConnectRequest>(body);
  const who = parseUserAndApp(config, userId, f.appType);
  if (!who.ok) return who;
  const returnTo = parseReturnTo(config, f.returnTo);
  if (!returnTo.ok) return returnTo;
  const selectAccount = parseSelectAccount(f.selectAccount);
  if (!selectAccount.ok) return selectAccount;
  return { ok: true, value: { userId: who.userId, appType: who.app.appType, returnTo: returnTo.value, selectAccount: selectAccount.value } };
}

export function parseConnectConfirmRequest(userId: unknown, body: unknown): Parsed<ConfirmInput> {
  const user = parseUserId(userId);
  if (!user.ok) return user;
  const ticket = parseTicket(bodyOf<ConnectConfirmRequest>(body).ticket);
  return ticket.ok ? { ok: true, value: { userId: user.value, ticket: ticket.value } } : ticket;
}

export function parseUserRequest(userId: unknown): Parsed<UserInput> {
  const user = parseUserId(userId);
  return user.ok ? { ok: true, value: { userId: user.value } } : user;
}

export function parseAuditRequest(userId: unknown, query: unknown): Parsed<AuditInput> {
  const user = parseUserId(userId);
  if (!user.ok) return user;
  const q = bodyOf<AuditQuery>(query);
  const limit = parseAuditLimit(q.limit);
  if (!limit.ok) return limit;
  const before = parseAuditBefore(q.before);
  if (!before.ok) return before;
  return { ok: true, value: { userId: user.value, limit: limit.value, before: before.value } };
}

export function parseCapabilityRequest(config: BrokerConfig, userId: unknown, body: unknown): Parsed<CapabilityInput> {
  const f = bodyOf<CapabilityRequest>(body);
  const who = parseRepositoryAccess(config, userId, f);
  if (!who.ok) return who;
  const session = parseSessionId(f.sessionId);
  if (!session.ok) return session;
  const ttl = parseTtlSeconds(f.ttlSeconds);
  if (!ttl.ok) return ttl;
  // The branch patterns' rules stay with the policy they feed (proxy/ref-policy.ts).
  const policy = parsePushPolicy(f.branches, f.allowDelete);
  if (!policy.ok) return policy;
  const identity = parseCapabilityIdentity(f.identity, who.app, providerOf(config, who.app));
  if (!identity.ok) return identity;
  const containerId = parseContainerId(f.containerId);
  if (!containerId.ok) return containerId;
  return {
    ok: true,
    value: {
      userId: who.userId,
      appType: who.app.appType,
      repository: who.repository,
      permission: who.permission,
      sessionId: session.value,
      ttlSeconds: ttl.value,
      policy: policy.value,
      identity: identity.value,
      containerId: containerId.value,
    },
  };
}

export function parseCapabilityRevocation(userId: unknown, sessionId: unknown): Parsed<RevokeInput> {
  const user = parseUserId(userId);
  if (!user.ok) return user;
  const session = parseSessionId(sessionId);
  return session.ok ? { ok: true, value: { userId: user.value, sessionId: session.value } } : session;
}

export function parseInstallationTokenRequest(config: BrokerConfig, body: unknown): Parsed<InstallationTokenInput> {
  const f = bodyOf<InstallationTokenRequest>(body);
  const app = parseAppType(config, f.appType);
  if (!app.ok) return app;
  // A caller's mistake, not the operator's: installation tokens exist for GitHub Apps only.
  if (!providerOf(config, app.value).installations) return failure("invalid_request", `${app.value.appType} is not a GitHub App: installation tokens are a GitHub App feature`);
  const repository = parseRepositoryFor(config, app.value, f.repository);
  if (!repository.ok) return repository;
  const permissions = parseInstallationPermissions(f.permissions);
  if (!permissions.ok) return permissions;
  const minValidity = parseMinValidity(f.minValiditySeconds);
  if (!minValidity.ok) return minValidity;
  return { ok: true, value: { appType: app.value.appType, repository: repository.value, permissions: permissions.value, minValiditySeconds: minValidity.value } };
}

// ---- helpers ----

/** The user id and App every per-user request starts from. */
function parseUserAndApp(config: BrokerConfig, userId: unknown, appType: unknown): { ok: true; userId: string; app: AppConfig } | Failure {
  const user = parseUserId(userId);
  if (!user.ok) return user;
  const app = parseAppType(config, appType);
  if (!app.ok) return app;
  return { ok: true, userId: user.value, app: app.value };
}

/** The user, the App, a repository on the App's provider and the permission asked for it, in the contract's order. */
function parseRepositoryAccess(
  config: BrokerConfig,
  userId: unknown,
  f: Body<{ appType: unknown; repository: unknown; permission: unknown }>,
): { ok: true; userId: string; app: AppConfig; repository: string; permission: Permission } | Failure {
  const who = parseUserAndApp(config, userId, f.appType);
  if (!who.ok) return who;
  const repository = parseRepositoryFor(config, who.app, f.repository);
  if (!repository.ok) return repository;
  const permission = parsePermission(f.permission);
  if (!permission.ok) return permission;
  return { ...who, repository: repository.value, permission: permission.value };
}

/** A body as the contract's request type `C` names its fields, each still unchecked. */
type Body<C> = { readonly [K in keyof C]?: unknown };

const EMPTY: Readonly<Record<string, never>> = Object.freeze({});

/** The body's fields; none when it is not an object (the routes have refused that already, RPC callers may not). */
function bodyOf<C>(body: unknown): Body<C> {
  return body && typeof body === "object" && !Array.isArray(body) ? (body as Body<C>) : EMPTY;
}

// ---- the contract's request types, held to the parsers ----

/**
 * How a parsed request `P` differs from the contract's request type `C`: fields of `C` that
 * `P` lacks, fields of `P` that `C` lacks, and fields whose parsed value `C` does not allow
 * (`null` stands for absent). `Own` are `P`'s fields that are not the body's (the path's, or
 * made from others); `Folded` are `C`'s fields the parser turns into one of those.
 */
type Difference<C, P, Own extends keyof P, Folded extends keyof C> = {
  onlyInContract: Exclude<keyof C, keyof P | Folded>;
  onlyParsed: Exclude<keyof P, keyof C | Own>;
  otherValues: { [K in Exclude<keyof C & keyof P, Own | Folded>]-?: P[K] extends C[K] | null ? never : K }[Exclude<keyof C & keyof P, Own | Folded>];
};

/**
 * `true` when `C` and `P` agree; otherwise their {@link Difference}, spelled out so that the
 * error {@link Agreement} fails with names the fields.
 */
type Agree<C, P, Own extends keyof P = never, Folded extends keyof C = never> =
  Difference<C, P, Own, Folded> extends { onlyInContract: never; onlyParsed: never; otherValues: never }
    ? true
    : { [K in keyof Difference<C, P, Own, Folded>]: Difference<C, P, Own, Folded>[K] };

type Holds<T extends true> = T;

/**
 * Compiles only while every contract request names the fields its parser reads and returns:
 * add a field to one and not the other and `tsc` names it here.
 */
export type Agreement = [
  Holds<Agree<TokenRequest, UserTokenInput, "userId" | "scope", "scope" | "permissions">>,
  Holds<Agree<RejectedTokenReport, RejectedTokenInput, "userId">>,
  Holds<Agree<ConnectRequest, ConnectInput, "userId">>,
  Holds<Agree<ConnectConfirmRequest, ConfirmInput, "userId">>,
  Holds<Agree<AuditQuery, AuditInput, "userId">>,
  Holds<Agree<CapabilityRequest, CapabilityInput, "userId" | "policy", "branches" | "allowDelete">>,
  Holds<Agree<InstallationTokenRequest, InstallationTokenInput>>,
];
