/**
 * The session a GraphQL document is judged for, and the ids a verdict asks the caller to
 * prove: shared by the policy (graphql-policy.ts) and its mutation rules
 * (graphql-mutations.ts), which import them from here rather than from each other.
 */

/** The session a document is judged for. */
export interface Binding {
  owner: string;
  name: string;
  permission: "push" | "pull";
  /** Whether the session may write this full ref (`refs/heads/agent/x`): the capability's `branches`. */
  branchAllowed(ref: string): boolean;
  /** Whether the session may delete refs (the capability's `allowDelete`). */
  allowDelete: boolean;
}

/**
 * An id the caller must resolve at GitHub (`node(id:)`) before forwarding:
 * - `mustBe: "repository"`: the id is the bound repository itself;
 * - `mustBe: "in_repository"`: the object belongs to the bound repository (it is a
 *   `RepositoryNode`, a `Ref`, a `Label`, ... whose `repository` is the bound one);
 * - `branch`: the object is a pull request whose base (`"base"`: a merge writes it) or head
 *   (`"head"`: updating the branch writes it) branch, or a ref (`"ref"`) whose full name,
 *   must pass `branchAllowed`; `"ref-delete"`: a ref to delete (allowDelete is checked
 *   already; the ref itself must pass `branchAllowed` too).
 */
export interface ProofRequest {
  id: string;
  mustBe: "repository" | "in_repository";
  branch?: "base" | "head" | "ref" | "ref-delete";
  /** Where the id was found (`node(id:)`, `input.labelIds[1]`): for messages. */
  at: string;
}
