/**
 * The GraphQL objects of the GitHub emulator (emulator/github-graphql.ts): plain objects in
 * the shape of GitHub's schema over the store's records. A property is a value or a function
 * of the field's arguments; a field left out answers its type's zero value (null when
 * nullable), so any query `gh` sends runs, and the fields that matter answer the truth.
 */
import type { Actor, Caller, CheckRunRecord, CommentRecord, CommitInfo, GitHubStore, GitRefs, IssueRecord, JobRecord, LabelRecord, Permission, RepoRecord, ReviewRecord, StatusRecord, WorkflowRunRecord } from "./github-store.ts";

/** What a view needs: who asks, the objects, the refs, and the public origin for URLs. */
export interface ViewContext {
  caller: Caller;
  store: GitHubStore;
  refs: GitRefs | null;
  /** `https://host` as the client sees it (URLs in answers point there). */
  web: string;
  /** Known user logins → actors (to tell a user from an organisation). */
  userByLogin(login: string): Actor | null;
}

/** A GraphQL error as GitHub sends it (`type` becomes the error's `type`). */
export class GitHubGraphQLError extends Error {
  readonly type: "NOT_FOUND" | "FORBIDDEN" | "UNPROCESSABLE";
  constructor(type: "NOT_FOUND" | "FORBIDDEN" | "UNPROCESSABLE", message: string) {
    super(message);
    this.type = type;
  }
}

export interface Page {
  first?: number | null;
  last?: number | null;
  after?: string | null;
  before?: string | null;
}

/** A connection (`nodes`, `edges`, `pageInfo`, `totalCount`) over `items`, paged by `args`. */
export function connection<T>(items: T[], args: Page, view: (item: T) => unknown): Record<string, unknown> {
  const at = (cursor: string | null | undefined) => (cursor ? Number(atob(cursor).split(":")[1]) : NaN);
  let start = Number.isFinite(at(args.after)) ? at(args.after) + 1 : 0;
  let end = Number.isFinite(at(args.before)) ? at(args.before) : items.length;
  if (args.first != null) end = Math.min(end, start + args.first);
  if (args.last != null) start = Math.max(start, end - args.last);
  const edges = items.slice(start, end).map((item, i) => ({ cursor: btoa(`cursor:${start + i}`), node: view(item) }));
  return {
    edges,
    nodes: edges.map((e) => e.node),
    totalCount: items.length,
    pageInfo: { hasNextPage: end < items.length, hasPreviousPage: start > 0, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
  };
}

function b64(s: string): string {
  return btoa(s).replace(/=+$/, "");
}

/** A user or a bot. */
export function actorView(ctx: ViewContext, actor: Actor | null, asType?: "User"): Record<string, unknown> | null {
  if (!actor) return null;
  const bot = actor.type === "Bot";
  return {
    __typename: asType ?? actor.type,
    id: `${bot ? "BOT" : "U"}_kgDO${b64(String(actor.id))}`,
    databaseId: actor.id,
    login: actor.login,
    name: actor.name ?? null,
    url: bot ? `${ctx.web}/apps/${actor.login.replace(/\[bot\]$/, "")}` : `${ctx.web}/${actor.login}`,
    avatarUrl: `${ctx.web}/avatars/${actor.login}`,
    resourcePath: `/${actor.login}`,
  };
}

/** A repository's owner: a known user, else an organisation. */
export function ownerView(ctx: ViewContext, login: string): Record<string, unknown> {
  const user = ctx.userByLogin(login);
  if (user) return actorView(ctx, user)!;
  return { __typename: "Organization", id: `O_kgDO${b64(login.toLowerCase())}`, login, name: login, url: `${ctx.web}/${login}` };
}

export function labelView(label: LabelRecord): Record<string, unknown> {
  return { __typename: "Label", id: label.nodeId, name: label.name, color: label.color, description: label.description, isDefault: false };
}

function association(ctx: ViewContext, repo: string, actor: Actor): string {
  return repo.split("/")[0]!.toLowerCase() === actor.login.toLowerCase() ? "OWNER" : actor.type === "Bot" ? "NONE" : "MEMBER";
}

export function commentView(ctx: ViewContext, parent: IssueRecord, c: CommentRecord): Record<string, unknown> {
  return {
    __typename: "IssueComment",
    id: c.nodeId,
    databaseId: c.id,
    author: actorView(ctx, c.author),
    authorAssociation: association(ctx, parent.repo, c.author),
    body: c.body,
    bodyText: c.body,
    createdAt: c.createdAt,
    updatedAt: c.createdAt,
    publishedAt: c.createdAt,
    url: `${issueUrl(ctx, parent)}#issuecomment-${c.id}`,
    viewerDidAuthor: c.author.login === ctx.caller.login,
    viewerCanUpdate: c.author.login === ctx.caller.login,
    reactionGroups: [],
  };
}

export function reviewView(ctx: ViewContext, parent: IssueRecord, r: ReviewRecord): Record<string, unknown> {
  return {
    ...commentView(ctx, parent, r),
    __typename: "PullRequestReview",
    url: `${issueUrl(ctx, parent)}#pullrequestreview-${r.id}`,
    state: r.state,
    submittedAt: r.createdAt,
    commit: r.commitOid ? { __typename: "Commit", oid: r.commitOid, abbreviatedOid: r.commitOid.slice(0, 7) } : null,
  };
}

function issueUrl(ctx: ViewContext, i: IssueRecord): string {
  const repo = ctx.store.repo(i.repo);
  return `${ctx.web}/${repo.owner}/${repo.name}/${i.kind === "pull" ? "pull" : "issues"}/${i.number}`;
}

/** Fields issues and pull requests share. */
function issueLike(ctx: ViewContext, i: IssueRecord): Record<string, unknown> {
  const repo = ctx.store.repo(i.repo);
  return {
    __typename: i.kind === "pull" ? "PullRequest" : "Issue",
    id: i.nodeId,
    databaseId: i.id,
    number: i.number,
    title: i.title,
    body: i.body,
    bodyText: i.body,
    state: i.state,
    stateReason: i.kind === "issue" && i.state === "CLOSED" ? "COMPLETED" : null,
    closed: i.state !== "OPEN",
    createdAt: i.createdAt,
    updatedAt: i.updatedAt,
    closedAt: i.closedAt,
    url: issueUrl(ctx, i),
    resourcePath: new URL(issueUrl(ctx, i)).pathname,
    author: actorView(ctx, i.author),
    authorAssociation: association(ctx, i.repo, i.author),
    viewerDidAuthor: i.author.login === ctx.caller.login,
    repository: () => repoView(ctx, repo),
    labels: (args: Page) => connection(i.labels.map((n) => ctx.store.label(i.repo, n)), args, labelView),
    comments: (args: Page) => connection(i.comments, args, (c) => commentView(ctx, i, c)),
    reactionGroups: [],
  };
}

export function issueView(ctx: ViewContext, i: IssueRecord): Record<string, unknown> {
  return i.kind === "pull" ? pullView(ctx, i) : issueLike(ctx, i);
}

/** The commits of a pull request: head's commits not on base (kept once merged). */
async function pullCommits(ctx: ViewContext, pr: IssueRecord): Promise<CommitInfo[]> {
  const kept = merged.get(pr);
  if (kept) return kept;
  return ctx.refs ? ctx.refs.log(pr.repo, pr.base, pr.head) : [];
}

/** Commits of merged pull requests, as they were when merged (the head branch may be gone). */
const merged = new WeakMap<IssueRecord, CommitInfo[]>();

/** Remembers a pull request's commits at its merge. */
export function rememberCommits(pr: IssueRecord, commits: CommitInfo[]): void {
  merged.set(pr, commits);
}

export function pullView(ctx: ViewContext, pr: IssueRecord): Record<string, unknown> {
  const repo = ctx.store.repo(pr.repo);
  const headOid = async () => (await pullCommits(ctx, pr)).at(-1)?.oid ?? (await ctx.refs?.branches(pr.repo))?.get(pr.head) ?? "";
  const latest = () => [...new Map(pr.reviews.map((r) => [r.author.login, r])).values()];
  return {
    ...issueLike(ctx, pr),
    merged: pr.state === "MERGED",
    mergedAt: pr.mergedAt,
    mergedBy: actorView(ctx, pr.mergedBy),
    isDraft: pr.isDraft,
    baseRefName: pr.base,
    headRefName: pr.head,
    headRefOid: headOid,
    baseRefOid: async () => (await ctx.refs?.branches(pr.repo))?.get(pr.base) ?? "",
    baseRef: () => refView(ctx, repo, pr.base),
    headRef: async () => ((await ctx.refs?.branches(pr.repo))?.has(pr.head) ? refView(ctx, repo, pr.head) : null),
    headRepository: () => repoView(ctx, repo),
    baseRepository: () => repoView(ctx, repo),
    headRepositoryOwner: () => ownerView(ctx, repo.owner),
    isCrossRepository: false,
    maintainerCanModify: false,
    mergeable: pr.state === "OPEN" ? "MERGEABLE" : "UNKNOWN",
    mergeStateStatus: pr.state === "OPEN" ? "CLEAN" : "UNKNOWN",
    reviewDecision: () => {
      const states = latest().map((r) => r.state);
      return states.includes("CHANGES_REQUESTED") ? "CHANGES_REQUESTED" : states.includes("APPROVED") ? "APPROVED" : null;
    },
    mergeCommit: pr.mergeCommitOid ? { __typename: "Commit", oid: pr.mergeCommitOid, abbreviatedOid: pr.mergeCommitOid.slice(0, 7) } : null,
    reviews: (args: Page & { states?: string[] }) => connection(pr.reviews.filter((r) => !args.states || args.states.includes(r.state)), args, (r) => reviewView(ctx, pr, r)),
    latestReviews: (args: Page) => connection(latest(), args, (r) => reviewView(ctx, pr, r)),
    latestOpinionatedReviews: (args: Page) => connection(latest().filter((r) => r.state !== "COMMENTED"), args, (r) => reviewView(ctx, pr, r)),
    commits: async (args: Page) =>
      connection(await pullCommits(ctx, pr), args, (c) => ({ __typename: "PullRequestCommit", id: `PURC_kwDO${b64(c.oid)}`, url: `${issueUrl(ctx, pr)}/commits/${c.oid}`, commit: commitView(ctx, pr.repo, c) })),
  };
}

export function refView(ctx: ViewContext, repo: RepoRecord, branch: string): Record<string, unknown> {
  const full = `${repo.owner}/${repo.name}`;
  return {
    __typename: "Ref",
    id: `REF_kwDO${b64(`${full}:${branch}`)}`,
    name: branch,
    prefix: "refs/heads/",
    repository: () => repoView(ctx, repo),
    target: async () => {
      const oid = (await ctx.refs?.branches(full))?.get(branch);
      const info = oid ? await ctx.refs!.commit(full, oid) : null;
      return info ? commitView(ctx, full, info) : null;
    },
    branchProtectionRule: null,
  };
}

export function commitView(ctx: ViewContext, repository: string, c: CommitInfo): Record<string, unknown> {
  const repo = ctx.store.repo(repository);
  const author = { name: c.authorName, email: c.authorEmail, date: c.authoredDate, user: null };
  return {
    __typename: "Commit",
    id: `C_kwDO${b64(c.oid)}`,
    oid: c.oid,
    abbreviatedOid: c.oid.slice(0, 7),
    message: c.messageBody ? `${c.messageHeadline}\n\n${c.messageBody}` : c.messageHeadline,
    messageHeadline: c.messageHeadline,
    messageBody: c.messageBody,
    committedDate: c.committedDate,
    authoredDate: c.authoredDate,
    url: `${ctx.web}/${repo.owner}/${repo.name}/commit/${c.oid}`,
    author,
    committer: author,
    authors: (args: Page) => connection([author], args, (a) => a),
    statusCheckRollup: () => rollupView(ctx, repository, c.oid),
  };
}

/** Check runs (seeded, and Actions jobs) and statuses on a commit: GitHub's `statusCheckRollup`. */
export async function checksOn(store: GitHubStore, refs: GitRefs | null, repository: string, oid: string): Promise<{ runs: CheckRunRecord[]; jobs: { run: WorkflowRunRecord; job: JobRecord }[]; statuses: StatusRecord[] }> {
  const repo = repository.toLowerCase();
  const branches = refs ? await refs.branches(repo) : new Map<string, string>();
  const on = (sha: string | null, branch: string | null) => sha === oid || (!sha && !!branch && branches.get(branch) === oid);
  const latest = new Map<string, StatusRecord>();
  for (const s of store.statuses) if (s.repo === repo && on(s.sha, s.headBranch)) latest.set(s.context, s);
  return {
    runs: store.checkRuns.filter((c) => c.repo === repo && on(c.headSha, c.headBranch)),
    jobs: store.runs.filter((r) => r.repo === repo && r.headSha === oid).flatMap((run) => run.jobs.map((job) => ({ run, job }))),
    statuses: [...latest.values()],
  };
}

async function rollupView(ctx: ViewContext, repository: string, oid: string): Promise<Record<string, unknown> | null> {
  const { runs, jobs, statuses } = await checksOn(ctx.store, ctx.refs, repository, oid);
  const repo = ctx.store.repo(repository);
  const contexts: Record<string, unknown>[] = [
    ...runs.map((c) => checkRunView(c.nodeId, c.id, c.name, c.status, c.conclusion, c.startedAt, c.completedAt, c.detailsUrl, c.workflowName)),
    ...jobs.map(({ run, job }) =>
      checkRunView(job.nodeId, job.id, job.name, job.status, job.conclusion, job.startedAt, job.completedAt, `${ctx.web}/${repo.owner}/${repo.name}/actions/runs/${run.id}/job/${job.id}`, run.workflowName),
    ),
    ...statuses.map((s) => ({ __typename: "StatusContext", id: s.nodeId, context: s.context, state: s.state.toUpperCase(), targetUrl: s.targetUrl, description: s.description, createdAt: s.createdAt, isRequired: false })),
  ];
  if (contexts.length === 0) return null;
  const states = contexts.map((c) => String(c.__typename === "CheckRun" ? (c.status !== "COMPLETED" ? "PENDING" : c.conclusion) : c.state));
  const state = states.some((s) => ["FAILURE", "TIMED_OUT", "CANCELLED", "ACTION_REQUIRED", "ERROR"].includes(s)) ? "FAILURE" : states.includes("PENDING") ? "PENDING" : "SUCCESS";
  return { __typename: "StatusCheckRollup", id: `SCR_kwDO${b64(oid)}`, state, contexts: (args: Page) => connection(contexts, args, (c) => c) };
}

function checkRunView(nodeId: string, id: number, name: string, status: string, conclusion: string | null, startedAt: string, completedAt: string | null, detailsUrl: string, workflow: string | null): Record<string, unknown> {
  return {
    __typename: "CheckRun",
    id: nodeId,
    databaseId: id,
    name,
    status: status.toUpperCase(),
    conclusion: conclusion?.toUpperCase() ?? null,
    startedAt,
    completedAt,
    detailsUrl,
    url: detailsUrl,
    permalink: detailsUrl,
    isRequired: false,
    checkSuite: { __typename: "CheckSuite", workflowRun: workflow ? { __typename: "WorkflowRun", workflow: { __typename: "Workflow", name: workflow } } : null },
  };
}

/** Filters of `pullRequests` and `issues`. */
interface ListArgs extends Page {
  states?: string[] | null;
  headRefName?: string | null;
  baseRefName?: string | null;
  labels?: string[] | null;
  orderBy?: { field: string; direction: "ASC" | "DESC" } | null;
  filterBy?: { states?: string[] | null; labels?: string[] | null; createdBy?: string | null } | null;
}

function list(ctx: ViewContext, repo: RepoRecord, kind: "issue" | "pull", args: ListArgs): IssueRecord[] {
  const full = `${repo.owner}/${repo.name}`.toLowerCase();
  const states = args.states ?? args.filterBy?.states;
  const labels = args.labels ?? args.filterBy?.labels;
  const items = ctx.store.issues.filter(
    (i) =>
      i.repo === full &&
      i.kind === kind &&
      (!states || states.includes(i.state)) &&
      (!args.headRefName || i.head === args.headRefName) &&
      (!args.baseRefName || i.base === args.baseRefName) &&
      (!labels || labels.every((l) => i.labels.some((x) => x.toLowerCase() === l.toLowerCase()))) &&
      (!args.filterBy?.createdBy || i.author.login === args.filterBy.createdBy),
  );
  // GitHub lists oldest first unless asked otherwise; `gh` asks for newest first.
  return args.orderBy?.direction === "DESC" ? items.reverse() : items;
}

export function repoView(ctx: ViewContext, repo: RepoRecord): Record<string, unknown> {
  const full = `${repo.owner}/${repo.name}`;
  const perm: Permission | undefined = ctx.caller.permission(full);
  const notFound = (what: string, n: number) => new GitHubGraphQLError("NOT_FOUND", `Could not resolve to ${what} with the number of ${n}.`);
  const byNumber = (n: number) => ctx.store.issue(full, n);
  return {
    __typename: "Repository",
    id: repo.nodeId,
    databaseId: repo.id,
    name: repo.name,
    nameWithOwner: full,
    owner: () => ownerView(ctx, repo.owner),
    url: `${ctx.web}/${full}`,
    sshUrl: `git@${new URL(ctx.web).hostname}:${full}.git`,
    resourcePath: `/${full}`,
    createdAt: repo.createdAt,
    updatedAt: repo.createdAt,
    pushedAt: repo.createdAt,
    description: null,
    isPrivate: true,
    visibility: "PRIVATE",
    isInOrganization: !ctx.userByLogin(repo.owner),
    hasIssuesEnabled: true,
    hasProjectsEnabled: false,
    hasWikiEnabled: false,
    mergeCommitAllowed: true,
    squashMergeAllowed: true,
    rebaseMergeAllowed: true,
    viewerDefaultMergeMethod: "MERGE",
    viewerPermission: perm === "push" ? "WRITE" : perm === "pull" ? "READ" : null,
    viewerCanAdminister: false,
    defaultBranchRef: () => refView(ctx, repo, "main"),
    ref: async ({ qualifiedName }: { qualifiedName: string }) => {
      const branch = qualifiedName.replace(/^refs\/heads\//, "");
      return (await ctx.refs?.branches(full))?.has(branch) ? refView(ctx, repo, branch) : null;
    },
    refs: async (args: Page & { refPrefix: string }) => {
      const names = args.refPrefix === "refs/heads/" ? [...((await ctx.refs?.branches(full))?.keys() ?? [])] : [];
      return connection(names, args, (b) => refView(ctx, repo, b));
    },
    object: async ({ oid, expression }: { oid?: string; expression?: string }) => {
      const info = ctx.refs ? await ctx.refs.commit(full, oid ?? expression ?? "") : null;
      return info ? commitView(ctx, full, info) : null;
    },
    pullRequest: ({ number }: { number: number }) => {
      const pr = byNumber(number);
      if (pr?.kind !== "pull") throw notFound("a PullRequest", number);
      return pullView(ctx, pr);
    },
    issue: ({ number }: { number: number }) => {
      const issue = byNumber(number);
      if (issue?.kind !== "issue") throw notFound("an Issue", number);
      return issueView(ctx, issue);
    },
    issueOrPullRequest: ({ number }: { number: number }) => {
      const item = byNumber(number);
      if (!item) throw notFound("an issue or pull request", number);
      return issueView(ctx, item);
    },
    pullRequests: (args: ListArgs) => connection(list(ctx, repo, "pull", args), args, (pr) => pullView(ctx, pr)),
    issues: (args: ListArgs) => connection(list(ctx, repo, "issue", args), args, (i) => issueView(ctx, i)),
    labels: (args: Page & { query?: string | null }) => connection(repo.labels.filter((l) => !args.query || l.name.toLowerCase().includes(args.query.toLowerCase())), args, labelView),
    label: ({ name }: { name: string }) => {
      const label = repo.labels.find((l) => l.name.toLowerCase() === name.toLowerCase());
      return label ? labelView(label) : null;
    },
  };
}

/**
 * The public origins of a request as its client sees them: `web` (`https://host`) and `api`
 * (`web` plus the path prefix a front took off, e.g. `/api/v3` on GitHub Enterprise's shape),
 * from `X-Forwarded-Proto`, `X-Forwarded-Host` (else `Host`) and `X-Forwarded-Prefix`.
 */
export function origins(request: Request): { web: string; api: string } {
  const url = new URL(request.url);
  const proto = request.headers.get("x-forwarded-proto")?.split(",")[0]?.trim() || url.protocol.slice(0, -1);
  const host = request.headers.get("x-forwarded-host")?.split(",")[0]?.trim() || request.headers.get("host") || url.host;
  const prefix = (request.headers.get("x-forwarded-prefix") ?? "").replace(/\/+$/, "");
  const web = `${proto}://${host}`;
  return { web, api: prefix.startsWith("/") ? `${web}${prefix}` : web };
}
