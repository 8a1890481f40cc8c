/**
 * REST v3 over the emulator's objects (emulator/github-store.ts), the routes `gh` and
 * `gh api` use around a change, and the control routes that seed them:
 *
 * - `GET|POST /repos/{o}/{r}/pulls`, `GET|PATCH /pulls/{n}`, `GET|POST /pulls/{n}/reviews`,
 *   `GET /repos/{o}/{r}/issues`, `GET /issues/{n}`, `GET|POST /issues/{n}/comments`,
 *   `GET /labels`, `GET /branches[/{b}]`, `DELETE /git/refs/heads/{b}`; Actions, checks and
 *   statuses in emulator/github-actions.ts; `GET /actions-logs/<key>` (no token).
 * - A token that cannot see the repository gets 404 (GitHub hides it); writes need `push`.
 * - Seeding for the control routes (`/_emulator/...`: `POST check-runs`, `statuses`,
 *   `workflow-runs`, `pulls`, `issues`, `labels`, `comments`; `GET pulls?repository=`,
 *   `issues?repository=`, the truth with authors), documented in docs/emulator.md.
 *
 * Web-standard APIs only.
 */
import { actionsRoute, serveLog } from "./github-actions.ts";
import type { Actor, Caller, GitHubStore, GitRefs, IssueRecord } from "./github-store.ts";
import { origins } from "./github-views.ts";

/** What emulator/github.ts lends the GraphQL and REST modules. */
export interface ApiHost {
  store: GitHubStore;
  refs: GitRefs | null;
  /** The caller a request's token speaks for; `null` without a valid token. */
  caller(request: Request): Caller | null;
  /** A user of the emulator by login (any case). */
  userByLogin(login: string): Actor | null;
  json(status: number, body: unknown, extra?: Record<string, string>): Response;
  /**
   * Where Actions logs are downloaded from (GitHub's signed blob host, which needs no token);
   * `null`: the host the request came to.
   */
  logsOrigin(): string | null;
}

/** One REST request on a repository the caller may see. */
export interface RestContext {
  host: ApiHost;
  request: Request;
  caller: Caller;
  /** `owner/name` as asked. */
  full: string;
  web: string;
  api: string;
}

export class GitHubRest {
  readonly #host: ApiHost;

  constructor(host: ApiHost) {
    this.#host = host;
  }

  /** `GET /actions-logs/<key>` (no token, as GitHub's signed blob URLs); `null` for a malformed key. */
  log(key: string): Response | null {
    if (!/^[0-9a-f]{32}$/.test(key)) return null;
    return serveLog({ host: this.#host }, key) ?? this.#host.json(404, { message: "Not Found" });
  }

  /** Serves `/repos/{o}/{r}/...` for the routes of this module; `null` when the path is not one of them. */
  async serve(request: Request, url: URL): Promise<Response | null> {
    const host = this.#host;
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const m = /^\/repos\/([^/]+)\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return null;
    const full = `${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`;
    const rest = m[3]!;
    if (!ROUTES.some((r) => r.test(rest))) return null;
    const caller = host.caller(request);
    if (!caller) return host.json(401, { message: "Requires authentication", documentation_url: "https://docs.github.com/rest" });
    if (!caller.permission(full)) return host.json(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest" });
    const ctx: RestContext = { host, request, caller, full, ...origins(request) };
    return (await actionsRoute(ctx, rest, url)) ?? (await this.#objects(ctx, rest, url)) ?? host.json(404, { message: "Not Found" });
  }

  async #objects(ctx: RestContext, rest: string, url: URL): Promise<Response | null> {
    const { host, request, caller, full } = ctx;
    const store = host.store;
    const method = request.method;
    const write = method !== "GET" && method !== "HEAD";
    if (write && caller.permission(full) !== "push") return host.json(403, { message: "Resource not accessible by integration", documentation_url: "https://docs.github.com/rest" });
    const body = write ? ((await request.json().catch(() => ({}))) as Record<string, any>) : {};
    const repo = full.toLowerCase();
    const branches = async () => (host.refs ? await host.refs.branches(repo) : new Map<string, string>());
    let m: RegExpExecArray | null;

    if (rest === "pulls" && method === "GET") {
      const state = url.searchParams.get("state") ?? "open";
      const head = url.searchParams.get("head")?.replace(/^[^:]+:/, "");
      const base = url.searchParams.get("base");
      const items = store.issues.filter((i) => i.repo === repo && i.kind === "pull" && (state === "all" || (state === "open") === (i.state === "OPEN")) && (!head || i.head === head) && (!base || i.base === base));
      return host.json(200, await Promise.all(items.reverse().map((i) => this.#pullJson(ctx, i))));
    }
    if (rest === "pulls" && method === "POST") {
      const head = String(body.head ?? "").replace(/^[^:]+:/, "");
      const base = String(body.base ?? "");
      const known = await branches();
      if (!body.title || (host.refs && (!known.has(head) || !known.has(base)))) return host.json(422, { message: "Validation Failed", errors: [{ resource: "PullRequest", field: known.has(head) ? "base" : "head", code: "invalid" }] });
      if (store.issues.some((i) => i.repo === repo && i.kind === "pull" && i.state === "OPEN" && i.head === head && i.base === base)) {
        return host.json(422, { message: "Validation Failed", errors: [{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${full.split("/")[0]}:${head}.` }] });
      }
      const pr = store.open(full, { kind: "pull", title: String(body.title), body: String(body.body ?? ""), author: caller, base, head, isDraft: !!body.draft });
      return host.json(201, await this.#pullJson(ctx, pr));
    }
    if ((m = /^(pulls|issues)\/(\d+)$/.exec(rest))) {
      const item = store.issue(full, Number(m[2]));
      if (!item || (m[1] === "pulls" && item.kind !== "pull")) return host.json(404, { message: "Not Found" });
      if (method === "PATCH") {
        if (typeof body.title === "string") item.title = body.title;
        if (typeof body.body === "string") item.body = body.body;
        if (typeof body.base === "string" && item.kind === "pull") item.base = body.base;
        if ((body.state === "closed" || body.state === "open") && item.state !== "MERGED") {
          item.state = body.state === "closed" ? "CLOSED" : "OPEN";
          item.closedAt = body.state === "closed" ? store.timestamp() : null;
        }
        item.updatedAt = store.timestamp();
      } else if (method !== "GET") return null;
      return host.json(200, m[1] === "pulls" ? await this.#pullJson(ctx, item) : this.#issueJson(ctx, item));
    }
    if (rest === "issues" && method === "GET") {
      const state = url.searchParams.get("state") ?? "open";
      const items = store.issues.filter((i) => i.repo === repo && (state === "all" || (state === "open") === (i.state === "OPEN")));
      return host.json(200, items.reverse().map((i) => this.#issueJson(ctx, i)));
    }
    if ((m = /^issues\/(\d+)\/comments$/.exec(rest))) {
      const item = store.issue(full, Number(m[1]));
      if (!item) return host.json(404, { message: "Not Found" });
      if (method === "POST") {
        if (typeof body.body !== "string" || !body.body) return host.json(422, { message: "Validation Failed", errors: [{ resource: "IssueComment", field: "body", code: "missing_field" }] });
        return host.json(201, this.#commentJson(ctx, item, store.comment(item, caller, body.body)));
      }
      return method === "GET" ? host.json(200, item.comments.map((c) => this.#commentJson(ctx, item, c))) : null;
    }
    if ((m = /^pulls\/(\d+)\/reviews$/.exec(rest))) {
      const pr = store.issue(full, Number(m[1]));
      if (pr?.kind !== "pull") return host.json(404, { message: "Not Found" });
      const json = (r: IssueRecord["reviews"][number]) => ({ id: r.id, node_id: r.nodeId, user: userJson(r.author), body: r.body, state: r.state, submitted_at: r.createdAt, commit_id: r.commitOid });
      if (method === "POST") {
        const state = body.event === "APPROVE" ? "APPROVED" : body.event === "REQUEST_CHANGES" ? "CHANGES_REQUESTED" : "COMMENTED";
        if (pr.author.login === caller.login && state !== "COMMENTED") return host.json(422, { message: "Unprocessable Entity", errors: ["Can not approve your own pull request"] });
        return host.json(200, json(store.review(pr, caller, state, String(body.body ?? ""), null)));
      }
      return method === "GET" ? host.json(200, pr.reviews.map(json)) : null;
    }
    if (rest === "labels" && method === "GET") {
      return host.json(200, store.repo(full).labels.map((l) => ({ id: l.id, node_id: l.nodeId, name: l.name, color: l.color, description: l.description, default: false })));
    }
    if ((m = /^branches(?:\/(.+))?$/.exec(rest)) && method === "GET") {
      const known = await branches();
      const one = (name: string, sha: string) => ({ name, commit: { sha, url: `${ctx.api}/repos/${full}/commits/${sha}` }, protected: false });
      if (!m[1]) return host.json(200, [...known].map(([n, sha]) => one(n, sha)));
      const sha = known.get(decodeURIComponent(m[1]));
      return sha ? host.json(200, one(decodeURIComponent(m[1]), sha)) : host.json(404, { message: "Branch not found" });
    }
    if ((m = /^git\/refs\/heads\/(.+)$/.exec(rest)) && method === "DELETE") {
      const branch = decodeURIComponent(m[1]!);
      if (!host.refs || !(await branches()).has(branch)) return host.json(422, { message: "Reference does not exist" });
      await host.refs.deleteBranch(repo, branch);
      return new Response(null, { status: 204 });
    }
    return null;
  }

  async #pullJson(ctx: RestContext, pr: IssueRecord): Promise<Record<string, unknown>> {
    const known = ctx.host.refs ? await ctx.host.refs.branches(pr.repo) : new Map<string, string>();
    const [owner, name] = ctx.full.split("/");
    const repoJson = { name, full_name: ctx.full, owner: { login: owner }, private: true };
    const side = (ref: string) => ({ ref, label: `${owner}:${ref}`, sha: known.get(ref) ?? null, repo: repoJson, user: { login: owner } });
    return {
      ...this.#issueJson(ctx, pr),
      url: `${ctx.api}/repos/${ctx.full}/pulls/${pr.number}`,
      html_url: `${ctx.web}/${ctx.full}/pull/${pr.number}`,
      state: pr.state === "OPEN" ? "open" : "closed",
      draft: pr.isDraft,
      merged: pr.state === "MERGED",
      merged_at: pr.mergedAt,
      merged_by: pr.mergedBy && userJson(pr.mergedBy),
      merge_commit_sha: pr.mergeCommitOid,
      head: side(pr.head),
      base: side(pr.base),
    };
  }

  #issueJson(ctx: RestContext, i: IssueRecord): Record<string, unknown> {
    const kind = i.kind === "pull" ? "pull" : "issues";
    return {
      id: i.id,
      node_id: i.nodeId,
      number: i.number,
      title: i.title,
      body: i.body,
      state: i.state === "OPEN" ? "open" : "closed",
      user: userJson(i.author),
      labels: i.labels.map((n) => ctx.host.store.label(i.repo, n)).map((l) => ({ id: l.id, node_id: l.nodeId, name: l.name, color: l.color, description: l.description })),
      comments: i.comments.length,
      created_at: i.createdAt,
      updated_at: i.updatedAt,
      closed_at: i.closedAt,
      url: `${ctx.api}/repos/${ctx.full}/issues/${i.number}`,
      html_url: `${ctx.web}/${ctx.full}/${kind}/${i.number}`,
      ...(i.kind === "pull" ? { pull_request: { url: `${ctx.api}/repos/${ctx.full}/pulls/${i.number}`, html_url: `${ctx.web}/${ctx.full}/pull/${i.number}` } } : {}),
    };
  }

  #commentJson(ctx: RestContext, parent: IssueRecord, c: IssueRecord["comments"][number]): Record<string, unknown> {
    return { id: c.id, node_id: c.nodeId, body: c.body, user: userJson(c.author), created_at: c.createdAt, updated_at: c.createdAt, html_url: `${ctx.web}/${ctx.full}/${parent.kind === "pull" ? "pull" : "issues"}/${parent.number}#issuecomment-${c.id}` };
  }

  // ---- seeding, for the control routes (`/_emulator/...`, emulator/github-routes.ts) ----

  /** `POST check-runs`: a check run on a commit, or on a branch's tip. */
  seedCheckRun(repository: string, body: Record<string, any>): Response {
    return this.#host.json(200, this.#host.store.addCheckRun(repository, body as { name: string }));
  }

  /** `POST statuses`: a commit status. */
  seedStatus(repository: string, body: Record<string, any>): Response {
    return this.#host.json(200, this.#host.store.addStatus(repository, body as { state: "success" }));
  }

  /** `POST workflow-runs`: an Actions run (on the branch's tip unless `headSha`); its jobs. */
  async seedRun(repository: string, body: Record<string, any>): Promise<Response> {
    const host = this.#host;
    const tip = async () => (host.refs && typeof body.headBranch === "string" ? ((await host.refs.branches(repository)).get(body.headBranch) ?? null) : null);
    const headSha = body.headSha ?? (await tip());
    if (!headSha) return host.json(422, { message: "headSha, or a headBranch that exists, is required" });
    const run = host.store.addRun(repository, { ...(body as { workflowName: string; headBranch: string; jobs: [] }), headSha, actor: this.#actor(body.actor) });
    return host.json(200, { id: run.id, jobs: run.jobs.map((j) => ({ id: j.id, name: j.name })) });
  }

  /** `POST pulls`: a pull request as another session might have opened it (no branch needs to exist). */
  seedPull(repository: string, body: Record<string, any>): Response {
    const pull = this.#host.store.open(repository, { kind: "pull", title: String(body.title ?? "A pull request"), body: String(body.body ?? ""), author: this.#actor(body.author), head: String(body.head ?? "feature"), base: String(body.base ?? "main") });
    return this.#host.json(200, { number: pull.number, id: pull.nodeId });
  }

  /** `POST issues`: an issue. */
  seedIssue(repository: string, body: Record<string, any>): Response {
    const issue = this.#host.store.open(repository, { kind: "issue", title: String(body.title ?? "An issue"), body: String(body.body ?? ""), author: this.#actor(body.author), labels: body.labels as string[] | undefined });
    return this.#host.json(200, { number: issue.number, nodeId: issue.nodeId });
  }

  /** `POST labels`: a label. */
  seedLabel(repository: string, body: Record<string, any>): Response {
    return this.#host.json(200, this.#host.store.label(repository, String(body.name), { color: body.color, description: body.description }));
  }

  /** `POST comments`: a comment on an issue or pull request. */
  seedComment(repository: string, body: Record<string, any>): Response {
    const item = this.#host.store.issue(repository, Number(body.number));
    if (!item) return this.#host.json(404, { message: "no such issue or pull request" });
    return this.#host.json(200, this.#host.store.comment(item, this.#actor(body.author), String(body.body ?? "")));
  }

  /** `GET pulls|issues?repository=`: the records, with logins for people (the truth for tests). */
  records(action: "pulls" | "issues", repository: string): Response {
    const kind = action === "pulls" ? "pull" : "issue";
    const items = this.#host.store.issues.filter((i) => i.repo === repository.toLowerCase() && i.kind === kind);
    return this.#host.json(200, { [action]: items.map((i) => ({ ...i, author: i.author.login, mergedBy: i.mergedBy?.login ?? null, comments: i.comments.map((c) => ({ author: c.author.login, body: c.body })), reviews: i.reviews.map((r) => ({ author: r.author.login, state: r.state, body: r.body })) })) });
  }

  /** A user of the emulator by login, else a made-up one of that login (`octocat` by default). */
  #actor(login: unknown): Actor {
    return this.#host.userByLogin(String(login ?? "")) ?? { login: String(login ?? "octocat"), id: 1, type: "User" };
  }
}

/** The `/repos/{o}/{r}/...` suffixes this module (and github-actions.ts) serve. */
const ROUTES = [/^actions\//, /^check-runs\/\d+\/annotations$/, /^commits\/.+\/(check-runs|status)$/, /^statuses\/[0-9a-f]{7,40}$/, /^pulls(\/\d+(\/reviews)?)?$/, /^issues(\/\d+(\/comments)?)?$/, /^labels$/, /^branches(\/.+)?$/, /^git\/refs\/heads\/.+$/];

function userJson(a: Actor): Record<string, unknown> {
  return { login: a.login, id: a.id, type: a.type };
}
