/**
 * The shapes of what the GitHub emulator knows beyond git and tokens (emulator/github-store.ts
 * keeps them): repositories, pull requests and issues, comments, reviews, labels, check runs,
 * commit statuses, Actions runs and jobs; who acts on them ({@link Actor}, {@link Caller}) and
 * the git side they read ({@link GitRefs}).
 */

export type Permission = "push" | "pull";

/** Who a token speaks for: a user, or an App's bot (`<slug>[bot]`) for an installation token. */
export interface Actor {
  login: string;
  id: number;
  type: "User" | "Bot";
  name?: string | null;
}

/** An authenticated caller: who, and what it may do on a repository (`owner/name`, any case). */
export interface Caller extends Actor {
  permission(repository: string): Permission | undefined;
}

/** One commit, as read from the bare repository. */
export interface CommitInfo {
  oid: string;
  messageHeadline: string;
  messageBody: string;
  committedDate: string;
  authoredDate: string;
  authorName: string;
  authorEmail: string;
}

export type MergeMethod = "MERGE" | "SQUASH" | "REBASE";

/**
 * The real bare repositories' refs and commits (emulator/git-refs.ts in Node). The emulator
 * itself stays Web-standard, so this is injected next to the git backend.
 */
export interface GitRefs {
  /** Branch name → tip oid (`refs/heads/*`). */
  branches(repository: string): Promise<Map<string, string>>;
  commit(repository: string, rev: string): Promise<CommitInfo | null>;
  /** Commits reachable from `head` and not from `base`, oldest first. */
  log(repository: string, base: string, head: string): Promise<CommitInfo[]>;
  /** Merges `head` into branch `base` (a merge commit, or one squashed commit) and moves `base`. */
  merge(repository: string, options: { base: string; head: string; method: MergeMethod; message: string; author: Actor }): Promise<{ ok: true; oid: string } | { ok: false; message: string }>;
  deleteBranch(repository: string, branch: string): Promise<void>;
}

export interface RepoRecord {
  id: number;
  nodeId: string;
  owner: string;
  name: string;
  createdAt: string;
  nextNumber: number;
  labels: LabelRecord[];
}

export interface LabelRecord {
  id: number;
  nodeId: string;
  name: string;
  color: string;
  description: string | null;
}

export interface CommentRecord {
  id: number;
  nodeId: string;
  author: Actor;
  body: string;
  createdAt: string;
}

export type ReviewState = "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED";

export interface ReviewRecord extends CommentRecord {
  state: ReviewState;
  commitOid: string | null;
}

/** An issue, or a pull request (GitHub numbers both in one sequence per repository). */
export interface IssueRecord {
  kind: "issue" | "pull";
  id: number;
  nodeId: string;
  /** Lower-case `owner/name`. */
  repo: string;
  number: number;
  title: string;
  body: string;
  state: "OPEN" | "CLOSED" | "MERGED";
  author: Actor;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  labels: string[];
  comments: CommentRecord[];
  // Pull requests only.
  base: string;
  head: string;
  isDraft: boolean;
  reviews: ReviewRecord[];
  mergedAt: string | null;
  mergedBy: Actor | null;
  mergeCommitOid: string | null;
}

export interface CheckRunRecord {
  id: number;
  nodeId: string;
  repo: string;
  /** Which commit it ran on: an oid, or (seeded ahead of a push) whatever tip `headBranch` has. */
  headSha: string | null;
  headBranch: string | null;
  name: string;
  status: "queued" | "in_progress" | "completed";
  conclusion: "success" | "failure" | "neutral" | "cancelled" | "skipped" | "timed_out" | "action_required" | null;
  startedAt: string;
  completedAt: string | null;
  detailsUrl: string;
  workflowName: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
}

export interface StatusRecord {
  id: number;
  nodeId: string;
  repo: string;
  sha: string | null;
  headBranch: string | null;
  context: string;
  state: "error" | "failure" | "pending" | "success";
  description: string | null;
  targetUrl: string | null;
  createdAt: string;
}

export interface StepRecord {
  name: string;
  number: number;
  status: "completed" | "in_progress" | "queued";
  conclusion: string | null;
  log: string;
}

export interface JobRecord {
  id: number;
  nodeId: string;
  runId: number;
  name: string;
  status: "completed" | "in_progress" | "queued";
  conclusion: string | null;
  startedAt: string;
  completedAt: string | null;
  steps: StepRecord[];
  /** The unguessable part of the log's download URL (served without a token, as GitHub's are). */
  logKey: string;
}

export interface WorkflowRunRecord {
  id: number;
  nodeId: string;
  repo: string;
  workflowId: number;
  workflowName: string;
  workflowPath: string;
  headBranch: string;
  headSha: string;
  event: string;
  status: "completed" | "in_progress" | "queued";
  conclusion: string | null;
  displayTitle: string;
  runNumber: number;
  createdAt: string;
  updatedAt: string;
  actor: Actor;
  jobs: JobRecord[];
  logKey: string;
}
