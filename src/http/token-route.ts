/**
 * The hot path's route in one pass: `POST /v1/users/{userId}/token` on the public URL is
 * recognised from the path the entry has already parsed, and answered with the same bearer
 * check, body reading, operation and response as the routers would give it (routes.ts), but
 * without walking two routers, each parsing the URL and its query again. Every other request,
 * and any other method on this path, goes through the routers as before.
 */
import type { IRequest } from "itty-router";
import * as api from "../api";
import { requireInternalToken, withJsonBody } from "./middleware";
import { json, onError } from "./respond";

/** The router's pattern for this route (routes.ts), trailing slashes included. */
const TOKEN_PATH = /^\/v1\/users\/([^/]+)\/token\/*$/;

/** The answer for a token request, or `null` when `pathname` is some other route. */
export function tokenRoute(request: Request, env: Env, pathname: string): Promise<Response> | null {
  if (request.method !== "POST") return null;
  const match = TOKEN_PATH.exec(pathname);
  return match ? answer(request as unknown as IRequest, env, match[1]!) : null;
}

async function answer(request: IRequest, env: Env, rawUserId: string): Promise<Response> {
  try {
    const refused = (await requireInternalToken(request, env)) ?? (await withJsonBody(request, env));
    if (refused) return refused;
    return json(await api.getToken(env, decodeUserId(rawUserId), request.content));
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
