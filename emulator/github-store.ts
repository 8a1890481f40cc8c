/**
 * What the GitHub emulator knows about repositories beyond git and tokens: pull requests,
 * issues, comments, reviews, labels, check runs, commit statuses and Actions runs, with
 * GitHub-like ids (a database id and an opaque node id per object, stable for its life).
 * emulator/github-graphql.ts and emulator/github-rest.ts serve it; `/_emulator/` seeds it. The
 * records' shapes are in emulator/github-records.ts.
 *
 * Repositories are not declared: one exists as soon as somebody may see it (a user's
 * permission or an installation), and gets its record on first use. Branches and commits
 * live in the real bare repository, read through {@link GitRefs} (Node only, injected).
 *
 * Web-standard APIs only, like the rest of the emulator.
 */

import { randomHex } from "./encoding.ts";
import type { Actor, RepoRecord, LabelRecord, CommentRecord, ReviewState, ReviewRecord, IssueRecord, CheckRunRecord, StatusRecord, JobRecord, WorkflowRunRecord } from "./github-records.ts";
export type { Permission, Actor, Caller, CommitInfo, MergeMethod, GitRefs, RepoRecord, LabelRecord, CommentRecord, ReviewState, ReviewRecord, IssueRecord, CheckRunRecord, StatusRecord, StepRecord, JobRecord, WorkflowRunRecord } from "./github-records.ts";

type NodeEntry =
  | { type: "Repository"; record: RepoRecord }
  | { type: "Issue" | "PullRequest"; record: IssueRecord }
  | { type: "IssueComment"; record: CommentRecord; parent: IssueRecord }
  | { type: "PullRequestReview"; record: ReviewRecord; parent: IssueRecord }
  | { type: "Label"; record: LabelRecord; repo: string }
  | { type: "CheckRun"; record: CheckRunRecord };

const PREFIX: Record<string, string> = {
  Repository: "R",
  Issue: "I",
  PullRequest: "PR",
  IssueComment: "IC",
  PullRequestReview: "PRR",
  Label: "LA",
  CheckRun: "CR",
  StatusContext: "SC",
  WorkflowRun: "WFR",
  Job: "CR",
};

/** The emulator's objects, in memory. */
export class GitHubStore {
  readonly repos = new Map<string, RepoRecord>();
  readonly issues: IssueRecord[] = [];
  readonly checkRuns: CheckRunRecord[] = [];
  readonly statuses: StatusRecord[] = [];
  readonly runs: WorkflowRunRecord[] = [];
  readonly #nodes = new Map<string, NodeEntry>();
  #nextId = 1000;
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Forgets every object. */
  reset(): void {
    this.repos.clear();
    this.issues.length = 0;
    this.checkRuns.length = 0;
    this.statuses.length = 0;
    this.runs.length = 0;
    this.#nodes.clear();
  }

  /** The current time as GitHub writes it (`2024-01-01T00:00:00Z`). */
  timestamp(): string {
    return new Date(this.#now()).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  /** A new database id and its node id (`PR_kwDO…`: GitHub's shape, opaque, stable). */
  ids(type: string): { id: number; nodeId: string } {
    const id = ++this.#nextId;
    const bytes = new TextEncoder().encode(`emu:${type}:${id}`);
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return { id, nodeId: `${PREFIX[type] ?? "N"}_kwDO${btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}` };
  }

  /** The record of `owner/name`, created on first use. */
  repo(fullName: string): RepoRecord {
    const key = fullName.toLowerCase();
    let rec = this.repos.get(key);
    if (!rec) {
      const [owner, name] = fullName.split("/");
      rec = { ...this.ids("Repository"), owner: owner!, name: name!, createdAt: this.timestamp(), nextNumber: 1, labels: [] };
      this.repos.set(key, rec);
      this.#nodes.set(rec.nodeId, { type: "Repository", record: rec });
    }
    return rec;
  }

  /** What a node id stands for, and the repository (`owner/name`, lower case) it belongs to. */
  node(nodeId: string): (NodeEntry & { repo: string }) | null {
    const entry = this.#nodes.get(nodeId);
    if (!entry) return null;
    switch (entry.type) {
      case "Repository":
        return { ...entry, repo: `${entry.record.owner}/${entry.record.name}`.toLowerCase() };
      case "Issue":
      case "PullRequest":
      case "CheckRun":
        return { ...entry, repo: entry.record.repo };
      case "IssueComment":
      case "PullRequestReview":
        return { ...entry, repo: entry.parent.repo };
      case "Label":
        return { ...entry, repo: entry.repo };
    }
  }

  /** The issue or pull request `number` of a repository. */
  issue(fullName: string, number: number): IssueRecord | undefined {
    const repo = fullName.toLowerCase();
    return this.issues.find((i) => i.repo === repo && i.number === number);
  }

  /** Opens an issue or a pull request (the next number in the repository). */
  open(fullName: string, fields: { kind: "issue" | "pull"; title: string; body?: string; author: Actor; base?: string; head?: string; isDraft?: boolean; labels?: string[] }): IssueRecord {
    const repo = this.repo(fullName);
    const type = fields.kind === "pull" ? "PullRequest" : "Issue";
    const now = this.timestamp();
    const rec: IssueRecord = {
      kind: fields.kind,
      ...this.ids(type),
      repo: fullName.toLowerCase(),
      number: repo.nextNumber++,
      title: fields.title,
      body: fields.body ?? "",
      state: "OPEN",
      author: fields.author,
      createdAt: now,
      updatedAt: now,
      closedAt: null,
      labels: fields.labels ?? [],
      comments: [],
      base: fields.base ?? "",
      head: fields.head ?? "",
      isDraft: fields.isDraft ?? false,
      reviews: [],
      mergedAt: null,
      mergedBy: null,
      mergeCommitOid: null,
    };
    for (const name of rec.labels) this.label(fullName, name);
    this.issues.push(rec);
    this.#nodes.set(rec.nodeId, { type, record: rec });
    return rec;
  }

  /** Adds a comment to an issue or a pull request. */
  comment(parent: IssueRecord, author: Actor, body: string): CommentRecord {
    const rec: CommentRecord = { ...this.ids("IssueComment"), author, body, createdAt: this.timestamp() };
    parent.comments.push(rec);
    parent.updatedAt = rec.createdAt;
    this.#nodes.set(rec.nodeId, { type: "IssueComment", record: rec, parent });
    return rec;
  }

  /** Submits a review on a pull request. */
  review(parent: IssueRecord, author: Actor, state: ReviewState, body: string, commitOid: string | null): ReviewRecord {
    const rec: ReviewRecord = { ...this.ids("PullRequestReview"), author, body, state, commitOid, createdAt: this.timestamp() };
    parent.reviews.push(rec);
    parent.updatedAt = rec.createdAt;
    this.#nodes.set(rec.nodeId, { type: "PullRequestReview", record: rec, parent });
    return rec;
  }

  /** The label `name` of a repository, created (grey) when it does not exist yet. */
  label(fullName: string, name: string, fields: { color?: string; description?: string | null } = {}): LabelRecord {
    const repo = this.repo(fullName);
    let rec = repo.labels.find((l) => l.name.toLowerCase() === name.toLowerCase());
    if (!rec) {
      rec = { ...this.ids("Label"), name, color: fields.color ?? "ededed", description: fields.description ?? null };
      repo.labels.push(rec);
      this.#nodes.set(rec.nodeId, { type: "Label", record: rec, repo: fullName.toLowerCase() });
    } else {
      if (fields.color) rec.color = fields.color;
      if (fields.description !== undefined) rec.description = fields.description;
    }
    return rec;
  }

  /** Seeds a check run (on a commit, or on whatever a branch points at when asked). */
  addCheckRun(fullName: string, fields: Partial<Omit<CheckRunRecord, "id" | "nodeId" | "repo">> & { name: string }): CheckRunRecord {
    const now = this.timestamp();
    const status = fields.status ?? "completed";
    const rec: CheckRunRecord = {
      ...this.ids("CheckRun"),
      repo: fullName.toLowerCase(),
      headSha: fields.headSha ?? null,
      headBranch: fields.headBranch ?? null,
      name: fields.name,
      status,
      conclusion: fields.conclusion ?? (status === "completed" ? "success" : null),
      startedAt: fields.startedAt ?? now,
      completedAt: fields.completedAt ?? (status === "completed" ? now : null),
      detailsUrl: fields.detailsUrl ?? "",
      workflowName: fields.workflowName ?? null,
      output: fields.output ?? { title: null, summary: null, text: null },
    };
    this.checkRuns.push(rec);
    this.#nodes.set(rec.nodeId, { type: "CheckRun", record: rec });
    return rec;
  }

  /** Seeds (or, as GitHub does for a repeated context, supersedes) a commit status. */
  addStatus(fullName: string, fields: { sha?: string | null; headBranch?: string | null; context?: string; state: StatusRecord["state"]; description?: string | null; targetUrl?: string | null }): StatusRecord {
    const rec: StatusRecord = {
      ...this.ids("StatusContext"),
      repo: fullName.toLowerCase(),
      sha: fields.sha ?? null,
      headBranch: fields.headBranch ?? null,
      context: fields.context ?? "default",
      state: fields.state,
      description: fields.description ?? null,
      targetUrl: fields.targetUrl ?? null,
      createdAt: this.timestamp(),
    };
    this.statuses.push(rec);
    return rec;
  }

  /** Seeds a finished (or running) workflow run with its jobs, their steps and logs. */
  addRun(fullName: string, fields: { workflowName: string; workflowPath?: string; headBranch: string; headSha: string; event?: string; status?: WorkflowRunRecord["status"]; conclusion?: string | null; displayTitle?: string; actor: Actor; jobs: { name: string; status?: JobRecord["status"]; conclusion?: string | null; steps: { name: string; conclusion?: string | null; log?: string }[] }[] }): WorkflowRunRecord {
    const now = this.timestamp();
    const repo = fullName.toLowerCase();
    const existing = this.runs.find((r) => r.repo === repo && r.workflowName === fields.workflowName);
    const workflowId = existing?.workflowId ?? this.ids("Workflow").id;
    const status = fields.status ?? "completed";
    const ids = this.ids("WorkflowRun");
    const jobs: JobRecord[] = fields.jobs.map((j) => {
      const jobStatus = j.status ?? status;
      return {
        ...this.ids("Job"),
        runId: ids.id,
        name: j.name,
        status: jobStatus,
        conclusion: j.conclusion ?? (jobStatus === "completed" ? "success" : null),
        startedAt: now,
        completedAt: jobStatus === "completed" ? now : null,
        steps: j.steps.map((s, i) => ({ name: s.name, number: i + 1, status: jobStatus, conclusion: s.conclusion ?? (jobStatus === "completed" ? "success" : null), log: s.log ?? "" })),
        logKey: randomHex(16),
      };
    });
    const failed = jobs.some((j) => j.conclusion === "failure");
    const rec: WorkflowRunRecord = {
      ...ids,
      repo,
      workflowId,
      workflowName: fields.workflowName,
      workflowPath: fields.workflowPath ?? `.github/workflows/${fields.workflowName.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.yml`,
      headBranch: fields.headBranch,
      headSha: fields.headSha,
      event: fields.event ?? "push",
      status,
      conclusion: fields.conclusion ?? (status === "completed" ? (failed ? "failure" : "success") : null),
      displayTitle: fields.displayTitle ?? fields.workflowName,
      runNumber: this.runs.filter((r) => r.repo === repo && r.workflowId === workflowId).length + 1,
      createdAt: now,
      updatedAt: now,
      actor: fields.actor,
      jobs,
      logKey: randomHex(16),
    };
    this.runs.push(rec);
    return rec;
  }
}
