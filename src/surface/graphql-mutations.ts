/**
 * The mutations a `push` session may run through GraphQL, and what each one's input must
 * prove. Pure.
 *
 * Every `ID` in an input (at any depth, in lists and nested inputs) becomes a proof request:
 * `repositoryId` must be the bound repository, every other id must belong to it. Ids that
 * name people (`userIds`, `teamIds`, `botIds`, `assigneeIds`, `reviewerIds`) are
 * references to accounts, not data of another repository, and are passed as they are.
 * Ref writes are judged by the session's `branches` like a push: by name when the input
 * names the ref, else through a proof on the pull request or ref the input names. Moving a
 * pull request's base is judged as a merge into the new base.
 */
import { getNullableType, isInputObjectType, isListType, type GraphQLInputType } from "graphql";
import { isValidRefName } from "../proxy/ref-policy";
import type { Binding, ProofRequest } from "./graphql-binding";

export interface MutationSpec {
  /** The input field whose id, when proven, also has a branch to check (see ProofRequest.branch). */
  branch?: { field: string; kind: NonNullable<ProofRequest["branch"]> };
  /** The input field holding a full ref name the mutation creates (createRef). */
  createsRef?: string;
  /**
   * The input field holding a branch name the pull request's base moves to (updatePullRequest):
   * judged as a merge into it, since GitHub keeps an enabled auto-merge across the move.
   */
  movesBase?: string;
}

/**
 * The allow-list, the contract's: pull requests, reviews, comments, labels on the bound
 * repository's issues and pull requests, ref writes. What `gh pr ...` and `gh issue comment`
 * use, and their close relatives; issues themselves are read-only here, as on REST.
 */
export const MUTATIONS: Readonly<Record<string, MutationSpec>> = {
  createPullRequest: {},
  updatePullRequest: { movesBase: "baseRefName" },
  closePullRequest: {},
  reopenPullRequest: {},
  mergePullRequest: { branch: { field: "pullRequestId", kind: "base" } },
  enablePullRequestAutoMerge: { branch: { field: "pullRequestId", kind: "base" } },
  disablePullRequestAutoMerge: {},
  updatePullRequestBranch: { branch: { field: "pullRequestId", kind: "head" } },
  markPullRequestReadyForReview: {},
  convertPullRequestToDraft: {},
  addPullRequestReview: {},
  submitPullRequestReview: {},
  updatePullRequestReview: {},
  deletePullRequestReview: {},
  addPullRequestReviewComment: {},
  updatePullRequestReviewComment: {},
  deletePullRequestReviewComment: {},
  addPullRequestReviewThread: {},
  addPullRequestReviewThreadReply: {},
  resolveReviewThread: {},
  unresolveReviewThread: {},
  requestReviews: {},
  addComment: {},
  updateIssueComment: {},
  deleteIssueComment: {},
  addLabelsToLabelable: {},
  removeLabelsFromLabelable: {},
  createRef: { createsRef: "name" },
  updateRef: { branch: { field: "refId", kind: "ref" } },
  deleteRef: { branch: { field: "refId", kind: "ref-delete" } },
};

/** Input fields naming accounts: references, not another repository's data. */
const ACCOUNT_ID_FIELDS = new Set(["userIds", "teamIds", "botIds", "assigneeIds", "reviewerIds"]);

export type MutationVerdict =
  | { ok: true; proofs: ProofRequest[]; refWrites: string[] }
  | { ok: false; rule: "branch_not_allowed" | "operation_not_allowed"; message: string };

/**
 * Judges one allowed mutation's coerced `input` (variables substituted) of input type
 * `type`: every value whose schema type is `ID`, at any depth, is an id to prove.
 */
export function judgeMutationInput(name: string, spec: MutationSpec, input: unknown, type: GraphQLInputType, binding: Binding): MutationVerdict {
  const proofs: ProofRequest[] = [];
  const refWrites: string[] = [];
  if (spec.branch?.kind === "ref-delete" && !binding.allowDelete) {
    return { ok: false, rule: "branch_not_allowed", message: "deleting refs is not allowed for this session" };
  }
  const visit = (value: unknown, declared: GraphQLInputType, key: string, at: string): void => {
    if (value === null || value === undefined) return;
    const t = getNullableType(declared);
    if (isListType(t)) {
      // A single value where a list is declared is coerced to a one-item list.
      const items = Array.isArray(value) ? value : [value];
      return items.forEach((v, i) => visit(v, t.ofType, key, `${at}[${i}]`));
    }
    if (isInputObjectType(t)) {
      const fields = t.getFields();
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (fields[k]) visit(v, fields[k].type, k, `${at}.${k}`);
      return;
    }
    if (t.name !== "ID" || ACCOUNT_ID_FIELDS.has(key)) return;
    const request: ProofRequest = { id: String(value), mustBe: key === "repositoryId" ? "repository" : "in_repository", at };
    if (spec.branch && key === spec.branch.field) request.branch = spec.branch.kind;
    proofs.push(request);
  };
  visit(input, type, "input", "input");
  if (spec.createsRef) {
    const ref = (input as Record<string, unknown> | undefined)?.[spec.createsRef];
    if (typeof ref !== "string" || !ref.startsWith("refs/")) {
      return { ok: false, rule: "operation_not_allowed", message: `${name} needs a full ref name (refs/heads/...)` };
    }
    if (!mayWrite(binding, ref)) return { ok: false, rule: "branch_not_allowed", message: `${ref} is not a branch this session may write` };
    refWrites.push(ref);
  }
  if (spec.movesBase) {
    const base = (input as Record<string, unknown> | undefined)?.[spec.movesBase];
    if (base !== undefined && base !== null) {
      if (typeof base !== "string" || base === "") return { ok: false, rule: "operation_not_allowed", message: `${name}.${spec.movesBase} must be a branch name` };
      if (!mayWrite(binding, `refs/heads/${base}`)) return { ok: false, rule: "branch_not_allowed", message: `moving a pull request's base to ${base}: not a branch this session may merge into` };
    }
  }
  return { ok: true, proofs, refWrites };
}

/** A ref the session may write: one git accepts, within its branches. */
function mayWrite(binding: Binding, ref: string): boolean {
  return isValidRefName(ref) && binding.branchAllowed(ref);
}
