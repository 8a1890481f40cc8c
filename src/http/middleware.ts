/**
 * Cross-cutting concerns of the HTTP routes, as itty-router middleware: each returns a
 * response to stop the request, or nothing to let it through.
 */
import type { IRequest } from "itty-router";
import { failure } from "../contract";
import { timingSafeEqualStrings } from "../crypto";
import { readJsonBody } from "../validate";
import { json, notFound } from "./respond";

/** A route handler or middleware: the request (with params, query, content) and the Worker's env. */
export type Handler = (request: IRequest, env: Env) => Promise<Response | undefined> | Response | undefined;

/** Parses the JSON body (at most 16 KiB, an object) into `request.content`. */
export const withJsonBody: Handler = async (request) => {
  const parsed = await readJsonBody(request);
  if (!parsed.ok) return json(parsed);
  request.content = parsed.value;
  return undefined;
};

/** `/v1` on the public URL: 404 unless `INTERNAL_API_TOKEN` is set, 401 without the right bearer. */
export const requireInternalToken: Handler = async (request, env) => {
  const expected = env.INTERNAL_API_TOKEN;
  if (!expected) {
    await request.body?.cancel();
    return notFound();
  }
  const given = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1] ?? "";
  if (!(await timingSafeEqualStrings(given, expected))) {
    await request.body?.cancel();
    return json(failure("unauthorized", "Missing or wrong bearer token."));
  }
  return undefined;
};

/** A path parameter, percent-decoded; `undefined` (so: invalid) when it does not decode. */
export function param(request: IRequest, name: string): string | undefined {
  try {
    return decodeURIComponent(request.params[name] ?? "");
  } catch {
    return undefined;
  }
}

/** A single-valued query parameter. */
export function query(request: IRequest, name: string): string | undefined {
  const v = request.query[name];
  return typeof v === "string" ? v : undefined;
}
