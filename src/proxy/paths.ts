/**
 * The paths the capability proxies accept: git smart-HTTP for one repository, and an
 * allow-list of REST calls around a push. The raw path must be plain (no percent-encoding,
 * dot segments or doubled slashes), so what is checked is exactly what is forwarded.
 */
import { repositoryOf } from "../validate";

/** A git smart-HTTP request the proxy accepts. */
export interface GitRoute {
  /** `owner/name` as written in the path (GitHub compares case-insensitively). */
  repository: string;
  /** Path after `{owner}/{name}.git`, as sent upstream. */
  upstreamPath: "/info/refs" | "/git-upload-pack" | "/git-receive-pack";
  service: "git-upload-pack" | "git-receive-pack";
  /** A push: needs a `push` capability. */
  write: boolean;
}

/**
 * Parses `/git/{owner}/{name}(.git)/info/refs?service=...`, `/git-upload-pack` or
 * `/git-receive-pack`. The raw path must be plain: no percent-encoding, no dot segments, no
 * doubled slashes, so what is checked is exactly what is forwarded.
 */
export function parseGitRoute(method: string, rawPath: string, search: string): GitRoute | null {
  if (rawPath.includes("%") || rawPath.includes("//") || /(^|\/)\.\.?(\/|$)/.test(rawPath)) return null;
  const m = /^\/git\/([^/]+)\/([^/]+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(rawPath);
  if (!m) return null;
  const repository = repositoryOf(m[1]!, m[2]!);
  if (!repository) return null;
  const params = new URLSearchParams(search);
  if (m[3] === "info/refs") {
    const service = params.get("service");
    if (method !== "GET" || (service !== "git-upload-pack" && service !== "git-receive-pack") || [...params.keys()].length !== 1) return null;
    return { repository, upstreamPath: "/info/refs", service, write: service === "git-receive-pack" };
  }
  if (method !== "POST" || search !== "") return null;
  const service = m[3] as "git-upload-pack" | "git-receive-pack";
  return { repository, upstreamPath: `/${service}`, service, write: service === "git-receive-pack" };
}

/** A REST call the proxy forwards, under the bound repository only. */
export interface RestRoute {
  repository: string;
  /** Path below `/repos/{owner}/{name}`, e.g. `/pulls/12/comments` (or `` for the repository). */
  subPath: string;
  write: boolean;
}

/** The REST calls an agent needs around a push: read the repository, open and comment on PRs. */
const REST_ALLOWED: { pattern: RegExp; methods: string[] }[] = [
  { pattern: /^$/, methods: ["GET"] },
  { pattern: /^\/pulls$/, methods: ["GET", "POST"] },
  { pattern: /^\/pulls\/\d{1,10}$/, methods: ["GET", "PATCH"] },
  { pattern: /^\/pulls\/\d{1,10}\/(comments|reviews)$/, methods: ["GET", "POST"] },
  { pattern: /^\/issues\/\d{1,10}\/comments$/, methods: ["GET", "POST"] },
  { pattern: /^\/branches(\/[A-Za-z0-9._\/-]{1,200})?$/, methods: ["GET"] },
];

/** Parses `/api/repos/{owner}/{name}{subPath}` against the allow-list. */
export function parseRestRoute(method: string, rawPath: string): RestRoute | null {
  if (rawPath.includes("%") || rawPath.includes("//") || /(^|\/)\.\.?(\/|$)/.test(rawPath)) return null;
  const m = /^\/api\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(rawPath);
  if (!m) return null;
  const repository = repositoryOf(m[1]!, m[2]!);
  const subPath = m[3] ?? "";
  if (!repository) return null;
  const rule = REST_ALLOWED.find((r) => r.pattern.test(subPath));
  if (!rule || !rule.methods.includes(method)) return null;
  return { repository, subPath, write: method !== "GET" };
}
