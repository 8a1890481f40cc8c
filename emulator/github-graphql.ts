/**
 * `POST /graphql` of the GitHub emulator: GitHub's real schema (`@octokit/graphql-schema`)
 * made executable over the emulator's objects (emulator/github-store.ts, the views in
 * emulator/github-views.ts), so the real `gh` behaves against the emulator as against GitHub.
 *
 * - Auth: the tokens the REST API accepts (user tokens, scoped tokens, installation tokens);
 *   `viewer` is the token's user, or the App's bot for an installation token. No token: 401.
 * - What the token cannot see does not exist: `{"data":{"repository":null},"errors":[{"type":
 *   "NOT_FOUND","path":["repository"],"message":"Could not resolve to a Repository with the
 *   name 'o/r'."}]}` with HTTP 200, as GitHub answers. Mutations need `push` (FORBIDDEN).
 * - Invalid documents fail validation with GitHub's wording where `gh` shows it
 *   ("Field 'x' doesn't exist on type 'Y'"), HTTP 200.
 * - Mutations: pull requests (create, update, close, reopen, merge with a real merge in the
 *   bare repository, ready/draft), comments, reviews, labels; the author is the caller.
 *
 * Web-standard: the schema's text is loaded through an injected loader (Node's default reads
 * the package's `schema.graphql`).
 */
import {
  buildSchema,
  execute,
  GraphQLError,
  isAbstractType,
  isEnumType,
  isListType,
  isNonNullType,
  isObjectType,
  OverlappingFieldsCanBeMergedRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLFieldResolver,
  type GraphQLOutputType,
  type GraphQLSchema,
  type GraphQLTypeResolver,
} from "graphql";
import type { ApiHost } from "./github-rest.ts";
import type { Caller, IssueRecord, MergeMethod, ReviewState } from "./github-store.ts";
import { actorView, commentView, GitHubGraphQLError, issueView, labelView, origins, pullView, rememberCommits, repoView, reviewView, type ViewContext } from "./github-views.ts";


/** Reads GitHub's schema (SDL). */
export type SchemaSource = () => Promise<string>;

const defaultSource: SchemaSource = async () => (await import("@octokit/graphql-schema")).schema.idl;

let built: { source: SchemaSource; schema: Promise<GraphQLSchema> } | null = null;

/** GitHub's schema, built once per process (building it takes a moment). */
function schemaOf(source: SchemaSource): Promise<GraphQLSchema> {
  if (built?.source !== source) built = { source, schema: source().then((sdl) => buildSchema(sdl, { assumeValidSDL: true })) };
  return built.schema;
}

/** Any field not modelled answers its type's zero value: null, or for a non-null type `""`, 0, false, [], {}. */
function zero(type: GraphQLOutputType): unknown {
  if (!isNonNullType(type)) return null;
  const inner = type.ofType;
  if (isListType(inner)) return [];
  if (isEnumType(inner)) return inner.getValues()[0]!.value;
  if (isObjectType(inner)) return {};
  if (isAbstractType(inner)) return {};
  switch (inner.name) {
    case "Int":
    case "Float":
      return 0;
    case "Boolean":
      return false;
    case "DateTime":
      return "1970-01-01T00:00:00Z";
    default:
      return "";
  }
}

const fieldResolver: GraphQLFieldResolver<Record<string, unknown>, unknown> = (source, args, context, info) => {
  const value = source?.[info.fieldName];
  if (typeof value === "function") return value.call(source, args, context, info);
  return value === undefined ? zero(info.returnType) : value;
};

const typeResolver: GraphQLTypeResolver<Record<string, unknown>, unknown> = (value, _ctx, info, type) =>
  typeof value?.__typename === "string" ? value.__typename : info.schema.getPossibleTypes(type)[0]?.name;

/**
 * graphql-js's rules but one: GitHub accepts a field under two inline fragments of different
 * types with different return types (`...on Issue{state} ...on PullRequest{state}`, which
 * `gh issue view` sends), which graphql-js's overlap rule rejects.
 */
const RULES = specifiedRules.filter((rule) => rule !== OverlappingFieldsCanBeMergedRule);

export class GitHubGraphQL {
  readonly #host: ApiHost;
  readonly #source: SchemaSource;

  constructor(host: ApiHost, source: SchemaSource = defaultSource) {
    this.#host = host;
    this.#source = source;
  }

  /** Serves `POST /graphql`. */
  async serve(request: Request): Promise<Response> {
    const caller = this.#host.caller(request);
    if (!caller) {
      return this.#host.json(401, { message: "This endpoint requires you to be authenticated.", documentation_url: "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql" });
    }
    const body = (await request.json().catch(() => null)) as { query?: unknown; variables?: unknown; operationName?: unknown } | null;
    if (!body || typeof body.query !== "string") return this.#host.json(400, { message: "Problems parsing JSON", documentation_url: "https://docs.github.com/graphql" });
    return this.#host.json(200, await this.run(caller, body.query, (body.variables ?? {}) as Record<string, unknown>, typeof body.operationName === "string" ? body.operationName : undefined, origins(request).web));
  }

  /** Runs one document as `caller`; the JSON body GitHub would answer. */
  async run(caller: Caller, query: string, variables: Record<string, unknown>, operationName: string | undefined, web: string): Promise<Record<string, unknown>> {
    const schema = await schemaOf(this.#source);
    let document: DocumentNode;
    try {
      document = parse(query);
    } catch (err) {
      return { errors: [githubError(err as GraphQLError)] };
    }
    const invalid = validate(schema, document, RULES);
    if (invalid.length > 0) return { errors: invalid.map(githubError) };
    const ctx: ViewContext = { caller, store: this.#host.store, refs: this.#host.refs, web, userByLogin: (l) => this.#host.userByLogin(l) };
    const result = await execute({ schema, document, variableValues: variables, operationName, rootValue: { ...this.#query(ctx), ...this.#mutation(ctx) }, fieldResolver, typeResolver });
    const out: Record<string, unknown> = {};
    if (result.data !== undefined) out.data = result.data;
    if (result.errors?.length) out.errors = result.errors.map(githubError);
    return out;
  }

  #query(ctx: ViewContext): Record<string, unknown> {
    const { store, caller } = ctx;
    return {
      viewer: () => actorView(ctx, caller, "User"),
      repository: ({ owner, name }: { owner: string; name: string }) => {
        const full = `${owner}/${name}`;
        if (!caller.permission(full)) throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a Repository with the name '${full}'.`);
        return repoView(ctx, store.repo(full));
      },
      rateLimit: () => ({ limit: 5000, cost: 1, remaining: 4999, used: 1, nodeCount: 0, resetAt: new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z") }),
      node: ({ id }: { id: string }) => this.#node(ctx, id),
      nodes: ({ ids }: { ids: string[] }) => ids.map((id) => this.#node(ctx, id)),
      user: ({ login }: { login: string }) => {
        const user = this.#host.userByLogin(login);
        if (!user) throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a User with the login of '${login}'.`);
        return actorView(ctx, user);
      },
    };
  }

  /** A node the caller may see, as its view; NOT_FOUND otherwise (GitHub hides what a token cannot see). */
  #node(ctx: ViewContext, id: string): Record<string, unknown> {
    const entry = ctx.store.node(id);
    if (!entry || !ctx.caller.permission(entry.repo)) throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`);
    switch (entry.type) {
      case "Repository":
        return repoView(ctx, entry.record);
      case "Issue":
      case "PullRequest":
        return issueView(ctx, entry.record);
      case "IssueComment":
        return commentView(ctx, entry.parent, entry.record);
      case "PullRequestReview":
        return reviewView(ctx, entry.parent, entry.record);
      case "Label":
        return labelView(entry.record);
      case "CheckRun":
        return { __typename: "CheckRun", id: entry.record.nodeId, databaseId: entry.record.id, name: entry.record.name, status: entry.record.status.toUpperCase(), conclusion: entry.record.conclusion?.toUpperCase() ?? null };
    }
  }

  /** An issue or pull request the caller may write to, by node id. */
  #writable(ctx: ViewContext, id: string, mutation: string, kind?: "pull"): IssueRecord {
    const entry = ctx.store.node(id);
    if (!entry || !ctx.caller.permission(entry.repo)) throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`);
    if (entry.type !== "Issue" && entry.type !== "PullRequest") throw new GitHubGraphQLError("UNPROCESSABLE", `Could not resolve to an Issue or PullRequest with the global id of '${id}'`);
    if (kind === "pull" && entry.type !== "PullRequest") throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a PullRequest with the global id of '${id}'`);
    this.#mayWrite(ctx, entry.repo, mutation);
    return entry.record;
  }

  #mayWrite(ctx: ViewContext, repo: string, mutation: string): void {
    if (ctx.caller.permission(repo) !== "push") throw new GitHubGraphQLError("FORBIDDEN", `${ctx.caller.login} does not have the correct permissions to execute \`${mutation}\``);
  }

  #mutation(ctx: ViewContext): Record<string, unknown> {
    const { store, caller, refs } = ctx;
    const touched = (i: IssueRecord) => (i.updatedAt = store.timestamp());
    const payload = (input: { clientMutationId?: string }, fields: Record<string, unknown>) => ({ clientMutationId: input.clientMutationId ?? null, ...fields });
    type Input<T> = { input: T & { clientMutationId?: string } };
    return {
      createPullRequest: async ({ input }: Input<{ repositoryId: string; baseRefName: string; headRefName: string; title: string; body?: string; draft?: boolean }>) => {
        const repo = store.node(input.repositoryId);
        if (repo?.type !== "Repository" || !caller.permission(repo.repo)) throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a node with the global id of '${input.repositoryId}'`);
        this.#mayWrite(ctx, repo.repo, "CreatePullRequest");
        const head = input.headRefName.replace(/^[^:]+:/, "");
        const branches = refs ? await refs.branches(repo.repo) : null;
        if (branches && !branches.has(head)) throw new GitHubGraphQLError("UNPROCESSABLE", "Head sha can't be blank, Base sha can't be blank, No commits between " + `${input.baseRefName} and ${head}, Head ref must be a branch`);
        if (branches && !branches.has(input.baseRefName)) throw new GitHubGraphQLError("UNPROCESSABLE", "Base ref must be a branch");
        if (refs && (await refs.log(repo.repo, input.baseRefName, head)).length === 0) throw new GitHubGraphQLError("UNPROCESSABLE", `No commits between ${input.baseRefName} and ${head}`);
        const open = store.issues.find((i) => i.repo === repo.repo && i.kind === "pull" && i.state === "OPEN" && i.head === head && i.base === input.baseRefName);
        if (open) throw new GitHubGraphQLError("UNPROCESSABLE", `A pull request already exists for ${repo.record.owner}:${head}.`);
        const pr = store.open(repo.repo, { kind: "pull", title: input.title, body: input.body ?? "", author: caller, base: input.baseRefName, head, isDraft: input.draft ?? false });
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      updatePullRequest: ({ input }: Input<{ pullRequestId: string; title?: string; body?: string; baseRefName?: string; state?: "OPEN" | "CLOSED"; labelIds?: string[] }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "UpdatePullRequest", "pull");
        if (input.title != null) pr.title = input.title;
        if (input.body != null) pr.body = input.body;
        if (input.baseRefName != null) pr.base = input.baseRefName;
        if (input.state && pr.state !== "MERGED") setState(pr, input.state, store.timestamp());
        if (input.labelIds) pr.labels = labelNames(ctx, input.labelIds);
        touched(pr);
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      closePullRequest: ({ input }: Input<{ pullRequestId: string }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "ClosePullRequest", "pull");
        if (pr.state === "OPEN") setState(pr, "CLOSED", store.timestamp());
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      reopenPullRequest: ({ input }: Input<{ pullRequestId: string }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "ReopenPullRequest", "pull");
        if (pr.state === "CLOSED") setState(pr, "OPEN", store.timestamp());
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      markPullRequestReadyForReview: ({ input }: Input<{ pullRequestId: string }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "MarkPullRequestReadyForReview", "pull");
        pr.isDraft = false;
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      convertPullRequestToDraft: ({ input }: Input<{ pullRequestId: string }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "ConvertPullRequestToDraft", "pull");
        pr.isDraft = true;
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      mergePullRequest: async ({ input }: Input<{ pullRequestId: string; mergeMethod?: MergeMethod; commitHeadline?: string; commitBody?: string; expectedHeadOid?: string }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "MergePullRequest", "pull");
        if (pr.state !== "OPEN") throw new GitHubGraphQLError("UNPROCESSABLE", `Pull request Pull request is in ${pr.state === "MERGED" ? "merged" : "closed"} state`);
        const method = input.mergeMethod ?? "MERGE";
        const repo = store.repo(pr.repo);
        if (refs) {
          const commits = await refs.log(pr.repo, pr.base, pr.head);
          if (input.expectedHeadOid && commits.at(-1)?.oid !== input.expectedHeadOid) throw new GitHubGraphQLError("UNPROCESSABLE", "Head branch was modified. Review and try the merge again.");
          const headline = input.commitHeadline ?? (method === "MERGE" ? `Merge pull request #${pr.number} from ${repo.owner}/${pr.head}` : `${pr.title} (#${pr.number})`);
          const body = input.commitBody ?? (method === "MERGE" ? pr.title : "");
          const merged = await refs.merge(pr.repo, { base: pr.base, head: pr.head, method, message: body ? `${headline}\n\n${body}` : headline, author: caller });
          if (!merged.ok) throw new GitHubGraphQLError("UNPROCESSABLE", merged.message);
          rememberCommits(pr, commits);
          pr.mergeCommitOid = merged.oid;
        }
        const now = store.timestamp();
        Object.assign(pr, { state: "MERGED", mergedAt: now, closedAt: now, updatedAt: now, mergedBy: caller });
        return payload(input, { pullRequest: pullView(ctx, pr) });
      },
      addComment: ({ input }: Input<{ subjectId: string; body: string }>) => {
        const subject = this.#writable(ctx, input.subjectId, "AddComment");
        const comment = store.comment(subject, caller, input.body);
        const node = commentView(ctx, subject, comment);
        return payload(input, { commentEdge: { cursor: btoa(`cursor:${subject.comments.length - 1}`), node }, subject: issueView(ctx, subject), timelineEdge: { node } });
      },
      addPullRequestReview: ({ input }: Input<{ pullRequestId: string; event?: string; body?: string; commitOID?: string }>) => {
        const pr = this.#writable(ctx, input.pullRequestId, "AddPullRequestReview", "pull");
        const state: ReviewState = input.event === "APPROVE" ? "APPROVED" : input.event === "REQUEST_CHANGES" ? "CHANGES_REQUESTED" : "COMMENTED";
        if (pr.author.login === caller.login && state !== "COMMENTED") {
          throw new GitHubGraphQLError("UNPROCESSABLE", `Review Can not ${state === "APPROVED" ? "approve" : "request changes on"} your own pull request`);
        }
        const review = store.review(pr, caller, state, input.body ?? "", input.commitOID ?? null);
        return payload(input, { pullRequestReview: reviewView(ctx, pr, review) });
      },
      addLabelsToLabelable: ({ input }: Input<{ labelableId: string; labelIds: string[] }>) => {
        const item = this.#writable(ctx, input.labelableId, "AddLabelsToLabelable");
        for (const name of labelNames(ctx, input.labelIds)) if (!item.labels.includes(name)) item.labels.push(name);
        touched(item);
        return payload(input, { labelable: issueView(ctx, item) });
      },
      removeLabelsFromLabelable: ({ input }: Input<{ labelableId: string; labelIds: string[] }>) => {
        const item = this.#writable(ctx, input.labelableId, "RemoveLabelsFromLabelable");
        const gone = labelNames(ctx, input.labelIds);
        item.labels = item.labels.filter((l) => !gone.includes(l));
        touched(item);
        return payload(input, { labelable: issueView(ctx, item) });
      },
      closeIssue: ({ input }: Input<{ issueId: string }>) => {
        const issue = this.#writable(ctx, input.issueId, "CloseIssue");
        if (issue.state === "OPEN") setState(issue, "CLOSED", store.timestamp());
        return payload(input, { issue: issueView(ctx, issue) });
      },
      reopenIssue: ({ input }: Input<{ issueId: string }>) => {
        const issue = this.#writable(ctx, input.issueId, "ReopenIssue");
        if (issue.state === "CLOSED") setState(issue, "OPEN", store.timestamp());
        return payload(input, { issue: issueView(ctx, issue) });
      },
    };
  }
}

function setState(item: IssueRecord, state: "OPEN" | "CLOSED", now: string): void {
  item.state = state;
  item.closedAt = state === "CLOSED" ? now : null;
  item.updatedAt = now;
}

/** Label names of label node ids the caller may see (unknown ids: NOT_FOUND). */
function labelNames(ctx: ViewContext, ids: string[]): string[] {
  return ids.map((id) => {
    const entry = ctx.store.node(id);
    if (entry?.type !== "Label" || !ctx.caller.permission(entry.repo)) throw new GitHubGraphQLError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`);
    return entry.record.name;
  });
}

/** An error as GitHub words and shapes it: `{type?, path?, locations?, message, extensions?}`. */
function githubError(err: GraphQLError): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const original = err.originalError;
  if (original instanceof GitHubGraphQLError) out.type = original.type;
  if (err.path) out.path = err.path;
  if (err.locations) out.locations = err.locations;
  const field = /^Cannot query field "([^"]+)" on type "([^"]+)"\./.exec(err.message);
  const argument = /^Unknown argument "([^"]+)" on field "([^".]+)\.([^"]+)"\./.exec(err.message);
  if (field) {
    out.extensions = { code: "undefinedField", typeName: field[2], fieldName: field[1] };
    out.message = `Field '${field[1]}' doesn't exist on type '${field[2]}'`;
  } else if (argument) {
    out.extensions = { code: "argumentNotAccepted", name: argument[3], typeName: "Field", argumentName: argument[1] };
    out.message = `Field '${argument[3]}' doesn't accept argument '${argument[1]}'`;
  } else {
    out.message = original && !(original instanceof GitHubGraphQLError) && !(original instanceof GraphQLError) ? "Something went wrong while executing your query." : err.message;
  }
  return out;
}
