/**
 * The hot paths' routes in one pass: `POST /v1/users/{userId}/token` and
 * `POST /v1/installations/token` on the public URL are recognised from the path the entry has
 * already parsed, and answered with the same bearer check, body reading, operation and
 * response as the routers would give them (routes.ts), but without walking two routers, each
 * parsing the URL and its query again. Every other request, and any other method on these
 * paths, goes through the routers as before.
 */
import type { IRequest } from "itty-router";
import * as api from "../api";
import { getInstallationToken } from "../installations/api";
import { requireInternalToken, withJsonBody } from "./middleware";
import { json, onError } from "./respond";

/** The routers' patterns for these routes (routes.ts), trailing slashes included. */
const USER_TOKEN = /^\/v1\/users\/([^/]+)\/token\/*$/;
const INSTALLATION_TOKEN = /^\/v1\/installations\/token\/*$/;

/** The answer for a token request, or `null` when `pathname` is some other route. */
export function tokenRoute(request: Request, env: Env, pathname: string): Promise<Response> | null {
  if (request.method !== "POST") return null;
  const user = USER_TOKEN.exec(pathname);
  if (user) return answer(request as unknown as IRequest, env, (body) => api.getToken(env, decodeUserId(user[1]!), body));
  if (INSTALLATION_TOKEN.test(pathname)) return answer(request as unknown as IRequest, env, (body) => getInstallationToken(env, body));
  return null;
}

async function answer(request: IRequest, env: Env, operation: (body: unknown) => Promise<Parameters<typeof json>[0]>): Promise<Response> {
  try {
    const refused = (await requireInternalToken(request, env)) ?? (await withJsonBody(request, env));
    if (refused) return refused;
    return json(await operation(request.content));
  } catch (err) {
    return onError(err);
  }
}

/** As the router's `param`: percent-decoded, `undefined` (so: invalid) when it does not decode. */
function decodeUserId(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}
