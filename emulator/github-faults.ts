/**
 * Faults on demand for the GitHub emulator: which endpoints can be faulted, the kinds, and
 * how each kind answers (GitHub's shapes: a 403 with `x-ratelimit-remaining: 0`, SAML SSO's
 * `x-github-sso`, the OAuth endpoint's 200 error body).
 */
import { FaultQueue, Hangs } from "./faults.ts";
import type { GitHubHost } from "./github-host.ts";
import { oauthError } from "./github-oauth.ts";
import { randomToken } from "./encoding.ts";

/** Endpoints that can be counted and faulted. */
export type Endpoint =
  | "exchange"
  | "refresh"
  | "user"
  | "repo"
  | "revoke_grant"
  | "git"
  | "scoped"
  | "revoke_token"
  | "installation"
  | "installation_token";

/**
 * - `status_5xx`: answer 503 without doing anything.
 * - `hang`: never answer (until `GitHubEmulator.reset`, or `hangMs`); nothing done.
 * - `drop_after_rotate`: do the work (rotate the pair), then never answer: the response is lost.
 * - `rate_limit`: 403 with `x-ratelimit-remaining: 0` (API) or 429 (OAuth), `retry-after`.
 * - `bad_client`: `incorrect_client_credentials` (OAuth endpoint only).
 * - `delay`: answer normally, `delayMs` late (the rotation happens when the answer is sent).
 * - `sso_required`: 403 as for an organisation whose SAML SSO the token is not authorised for.
 */
export type FaultKind = "status_5xx" | "hang" | "drop_after_rotate" | "rate_limit" | "bad_client" | "delay" | "sso_required";

export interface Fault {
  endpoint: Endpoint;
  kind: FaultKind;
  /** How many requests it applies to; default 1. `-1`: until cleared. */
  count?: number;
  delayMs?: number;
}

/** The queued faults and the requests they hang. */
export class GitHubFaults {
  readonly queue = new FaultQueue<Endpoint, FaultKind, Fault>();
  readonly #hangs = new Hangs();
  readonly #host: Pick<GitHubHost, "now" | "settings" | "json">;

  constructor(host: Pick<GitHubHost, "now" | "settings" | "json">) {
    this.#host = host;
  }

  /** The fault the next request to `endpoint` meets, or `null`. */
  take(endpoint: Endpoint): Fault | null {
    return this.queue.take(endpoint);
  }

  /** Releases every pending hang (each answers its 504). */
  releaseHangs(): void {
    this.#hangs.releaseAll();
  }

  /** Never answers until reset or `hangMs`; then a 504, as a proxy in front of GitHub would. */
  hang(): Promise<Response> {
    return this.#hangs.wait(this.#host.settings.hangMs, () => this.#host.json(504, { message: "Gateway Timeout" }));
  }

  /**
   * The answer `fault` makes instead of the endpoint's (`oauth`: the token endpoint's shapes),
   * or `null` to carry on; `request` names the organisation an SSO fault points at.
   */
  async apply(fault: Fault | null, oauth: boolean, request?: Request): Promise<Response | null> {
    if (!fault) return null;
    const json: GitHubHost["json"] = (status, body, extra) => this.#host.json(status, body, extra);
    switch (fault.kind) {
      case "status_5xx":
        return json(503, { message: "Service Unavailable" });
      case "hang":
        return this.hang();
      case "rate_limit":
        return oauth
          ? json(429, { message: "Too Many Requests" }, { "retry-after": "30" })
          : json(
              403,
              { message: "API rate limit exceeded for user." },
              {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": String(Math.floor(this.#host.now() / 1000) + 60),
                "retry-after": "60",
              },
            );
      case "bad_client":
        return oauth ? oauthError(json, "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.") : null;
      case "delay":
        await new Promise((r) => setTimeout(r, fault.delayMs ?? 100));
        return null;
      case "sso_required":
        return json(
          403,
          { message: "Resource protected by organization SAML enforcement. You must grant your OAuth token access to this organization." },
          { "x-github-sso": `required; url=${ssoUrl(request)}` },
        );
      case "drop_after_rotate":
        return null; // handled by the endpoint: do the work, then hang
    }
  }
}

/**
 * Where GitHub sends a person to authorize an organisation's SAML SSO for an App: on the web
 * host (the API host without `api.`), `/orgs/{owner}/sso?authorization_request=...`.
 */
function ssoUrl(request: Request | undefined): string {
  const url = new URL(request?.url ?? "https://github.com/");
  const web = new URL(url.origin);
  if (web.hostname.startsWith("api.")) web.hostname = web.hostname.slice(4);
  const owner = /^\/repos\/([^/]+)\//.exec(url.pathname)?.[1] ?? /^\/([^/]+)\//.exec(url.pathname)?.[1] ?? "acme";
  return `${web.origin}/orgs/${owner}/sso?authorization_request=${randomToken("")}`;
}
