/**
 * The GitHub emulator's browser side, for the local demo: sign-in, the account picker and the
 * consent screen (the pages are emulator/pages.ts).
 *
 * As on github.com: a browser has a signed-in account (a cookie); a user who already
 * authorized the App is sent straight back to the callback with a code, no consent screen
 * (the reason the broker's connect needs the web app's confirmation); `prompt=select_account`
 * shows the account picker first.
 */
import type { EmulatorApp, EmulatorUser, GitHubHost } from "./github-host.ts";
import { readParams } from "./github-oauth.ts";
import { accountPickerPage, consentPage, htmlPage, signInPage, type PageApp } from "./pages.ts";

/** The account signed in to the browser that sent `request`, if any. */
export function signedInUser(users: ReadonlyMap<number, EmulatorUser>, request: Request): EmulatorUser | null {
  const m = /(?:^|;\s*)emulator_user=(\d+)/.exec(request.headers.get("cookie") ?? "");
  return m ? (users.get(Number(m[1])) ?? null) : null;
}

/** Issues a code as the consent screen's "Authorize" does (`GitHubEmulator.authorize`). */
export type Authorize = (params: { clientId: string; userId: number; redirectUri: string; codeChallenge?: string | null }) => string;

export class GitHubBrowser {
  readonly #host: GitHubHost;
  readonly #authorize: Authorize;

  constructor(host: GitHubHost, authorize: Authorize) {
    this.#host = host;
    this.#authorize = authorize;
  }

  /** `GET /login`: the sign-in page. */
  signIn(url: URL): Response {
    return signInPage([...this.#host.users.values()], localPath(url.searchParams.get("return_to")));
  }

  /** `POST /session`: signs the browser in as the account picked. */
  async session(request: Request): Promise<Response> {
    const form = await readParams(request);
    const user = this.#host.users.get(Number(form.get("user_id")));
    if (!user) return htmlPage("Sign in", "<h1>No such account</h1>", 400);
    return new Response(null, {
      status: 303,
      headers: { location: localPath(form.get("return_to")), "set-cookie": `emulator_user=${user.id}; Path=/; HttpOnly; SameSite=Lax` },
    });
  }

  /** `GET /login/oauth/authorize`: the account picker, sign-in, consent, or straight back with a code. */
  authorizePage(request: Request, url: URL): Response {
    const host = this.#host;
    const app = host.apps.get(url.searchParams.get("client_id") ?? "");
    if (!app) return htmlPage("Not found", "<h1>Unknown application</h1><p>No App has this client id.</p>", 404);
    const user = signedInUser(host.users, request);
    if (url.searchParams.get("prompt") === "select_account") {
      const next = new URL(url);
      next.searchParams.delete("prompt");
      return accountPickerPage(pageApp(app), [...host.users.values()], user, next.pathname + next.search);
    }
    const here = url.pathname + url.search;
    if (!user) return new Response(null, { status: 303, headers: { location: `/login?return_to=${encodeURIComponent(here)}` } });
    const redirectUri = url.searchParams.get("redirect_uri") ?? "";
    if (host.tokens.hasAuthorized(app.clientId, user.id) && URL.canParse(redirectUri)) {
      return backToApp(redirectUri, url.searchParams.get("state"), {
        code: this.#authorize({ clientId: app.clientId, userId: user.id, redirectUri, codeChallenge: url.searchParams.get("code_challenge") }),
      });
    }
    const fields: Record<string, string> = {};
    for (const k of ["client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"]) fields[k] = url.searchParams.get(k) ?? "";
    return consentPage(pageApp(app), user, fields, `/login?return_to=${encodeURIComponent(here)}`);
  }

  /** `POST /login/oauth/authorize`: the consent screen's answer. */
  async consentAnswer(request: Request): Promise<Response> {
    const form = await readParams(request);
    const redirectUri = form.get("redirect_uri") ?? "";
    if (!URL.canParse(redirectUri)) return htmlPage("Bad request", "<h1>Bad redirect_uri</h1>", 400);
    if (form.get("decision") !== "authorize") {
      return backToApp(redirectUri, form.get("state"), { error: "access_denied", error_description: "The user has denied your application access." });
    }
    // The signed-in account; a form's `user_id` only for callers without a browser session.
    const userId = signedInUser(this.#host.users, request)?.id ?? Number(form.get("user_id"));
    const clientId = form.get("client_id") ?? "";
    const code = this.#authorize({ clientId, userId, redirectUri, codeChallenge: form.get("code_challenge") || null });
    this.#host.tokens.grant(clientId, userId);
    return backToApp(redirectUri, form.get("state"), { code });
  }

  /**
   * `POST /_emulator/consent` (form: `url` = an authorize URL, `login`, `decision` =
   * `authorize` (default) or `deny`): the consent screen's answer for a terminal, so a person
   * can connect with curl. The same redirect to the App's callback as the browser's consent.
   */
  async consentWithoutBrowser(request: Request): Promise<Response> {
    const host = this.#host;
    const form = await readParams(request);
    const authorize = URL.canParse(form.get("url") ?? "") ? new URL(form.get("url")!) : null;
    const user = [...host.users.values()].find((u) => u.login === form.get("login"));
    if (!authorize || authorize.pathname !== "/login/oauth/authorize") return host.json(400, { message: "url must be an authorize URL the broker gave you" });
    if (!user) return host.json(400, { message: `no account '${form.get("login") ?? ""}'; the emulator has ${[...host.users.values()].map((u) => u.login).join(", ")}` });
    const app = host.apps.get(authorize.searchParams.get("client_id") ?? "");
    if (!app) return host.json(400, { message: "no App has this client id" });
    const answer = new URLSearchParams({ decision: form.get("decision") ?? "authorize", user_id: String(user.id) });
    for (const k of ["client_id", "redirect_uri", "state", "code_challenge"]) answer.set(k, authorize.searchParams.get(k) ?? "");
    return this.consentAnswer(new Request(request.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: answer }));
  }
}

/** The App as the pages show it: its name, or its client id when it has none. */
function pageApp(app: EmulatorApp): PageApp {
  return { clientId: app.clientId, name: app.name ?? app.clientId };
}

/** A `return_to` kept on the emulator: a path, never another origin (no open redirect). */
function localPath(value: string | null): string {
  return value && value.startsWith("/") && !value.startsWith("//") ? value : "/";
}

function backToApp(redirectUri: string, state: string | null, params: Record<string, string>): Response {
  const target = new URL(redirectUri);
  if (state !== null) target.searchParams.set("state", state);
  for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
  return new Response(null, { status: 302, headers: { location: target.toString() } });
}
