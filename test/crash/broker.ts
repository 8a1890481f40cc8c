/**
 * The broker as its callers reach it over HTTP, for the crash soak: the internal API with the
 * bearer token, the two-phase connect (connect → the provider's consent → the callback → the
 * web app's confirmation), and a verdict for every call: answered (with a status and body) or
 * not (the runtime was killed under it, or was down).
 */
import type { GitHubEmulator } from "../../emulator/github.ts";
import type { GitLabEmulator } from "../../emulator/gitlab.ts";
import { INTERNAL_API_TOKEN, RETURN_ORIGIN } from "../support/env.ts";

/** An answer, or `status: 0` when the broker gave none (connection refused or reset). */
export interface Answer {
  status: number;
  body: any;
}

export class BrokerClient {
  readonly #url: string;

  constructor(url: string) {
    this.#url = url;
  }

  async call(method: string, path: string, body?: unknown): Promise<Answer> {
    try {
      const res = await fetch(`${this.#url}${path}`, {
        method,
        headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: "manual",
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // not JSON: kept as text (a 5xx from the runtime itself)
      }
      return { status: res.status, body: parsed };
    } catch {
      return { status: 0, body: null };
    }
  }

  /**
   * The whole connect as a browser and the web app drive it. Returns the confirmation's
   * answer, or the first step that got none or failed.
   */
  async connect(userId: string, appType: "standard" | "gitlab", account: number, providers: { github: GitHubEmulator; gitlab: GitLabEmulator }): Promise<Answer & { step: string }> {
    const started = await this.call("POST", `/v1/users/${userId}/connect`, { appType, returnTo: `${RETURN_ORIGIN}/done` });
    if (started.status !== 200) return { ...started, step: "connect" };
    const authorize = new URL(started.body.authorizeUrl);
    const params = {
      clientId: authorize.searchParams.get("client_id")!,
      userId: account,
      redirectUri: authorize.searchParams.get("redirect_uri")!,
      codeChallenge: authorize.searchParams.get("code_challenge"),
    };
    const code = appType === "gitlab" ? providers.gitlab.authorize(params).code : providers.github.authorize(params);
    let ticket: string | null = null;
    try {
      const back = await fetch(`${this.#url}/oauth/callback?code=${encodeURIComponent(code)}&state=${encodeURIComponent(authorize.searchParams.get("state")!)}`, { redirect: "manual", signal: AbortSignal.timeout(30_000) });
      await back.body?.cancel();
      ticket = new URL(back.headers.get("location") ?? "x:").searchParams.get("connect_ticket");
      if (!ticket) return { status: back.status, body: null, step: "callback" };
    } catch {
      return { status: 0, body: null, step: "callback" };
    }
    return { ...(await this.call("POST", `/v1/users/${userId}/connect/confirm`, { ticket })), step: "confirm" };
  }
}
