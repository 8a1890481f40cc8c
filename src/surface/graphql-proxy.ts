/**
 * `POST /api/graphql` on AGENT_HOST: GitHub's GraphQL API for one session. The capability is
 * redeemed (a GraphQL request names no repository of its own: the document is judged against
 * the one the capability is bound to), the document judged by graphql-policy.ts, every id it
 * leaves open resolved at GitHub and proven to belong to the bound repository (and, for a
 * merge or a ref write, its branch judged by the session's branches), then forwarded with the
 * live token of the capability's identity. Refusals come back as GitHub answers a bad query:
 * HTTP 200 with `errors`, so `gh` prints the reason.
 */
import { loadConfig } from "../config";
import { failure } from "../contract";
import { PUBLIC_DOOR, type Door } from "../proxy/capability-token";
import { withIdentity, type Lent } from "../proxy/git-proxy";
import { refMatches } from "../proxy/ref-policy";
import { readLimited } from "../validate";
import { judgeGraphQL, type GraphQLBody, type ProofRequest } from "./graphql-policy";
import { graphQLProofRefusal, graphQLRefusal, type GraphQLErrorBody } from "./graphql-refusal";
import { apiEndpoints, failureResponse, forward, githubError, redeemSurface, upstreamHeaders } from "./upstream";

/** `gh`'s largest documents are a few KiB; introspection answers are big, queries are not. */
const MAX_GRAPHQL_BODY = 128 * 1024;

/** Serves one GraphQL request; `door`: where the capability comes from (src/proxy/capability-token.ts). */
export async function graphqlProxy(request: Request, env: Env, door: Door = PUBLIC_DOOR): Promise<Response> {
  const text = await readLimited(request, MAX_GRAPHQL_BODY);
  if (text === null) return githubError(413, `A GraphQL request body is at most ${MAX_GRAPHQL_BODY / 1024} KiB.`);
  let body: GraphQLBody;
  try {
    body = JSON.parse(text) as GraphQLBody;
    if (!body || typeof body !== "object") throw new Error();
  } catch {
    return githubError(400, "Problems parsing JSON");
  }
  const lent = await redeemSurface(env, request, null, false, "graphql", door);
  if (!lent.ok) return failureResponse(lent);
  const [owner, name] = lent.repository.split("/") as [string, string];
  const decision = judgeGraphQL(body, {
    owner,
    name,
    permission: lent.permission,
    allowDelete: lent.policy.allowDelete,
    branchAllowed: (ref) => lent.policy.branches.some((p) => refMatches(p, ref)),
  });
  if (!decision.ok) return answer(graphQLRefusal(decision), lent);

  const api = apiEndpoints(loadConfig(env));
  const headers = upstreamHeaders(request, lent, "/api");
  headers.set("content-type", "application/json");
  if (decision.proveIds.length > 0) {
    const refused = await prove(api.graphql, headers, decision.proveIds, lent);
    if (refused) return refused;
  }
  return forward(api.graphql, { method: "POST", headers, body: text }, lent, false);
}

function answer(refusal: { status: 200; body: GraphQLErrorBody }, lent: Lent): Response {
  return withIdentity(new Response(JSON.stringify(refusal.body), { status: refusal.status, headers: { "content-type": "application/json; charset=utf-8" } }), lent.identity);
}

/**
 * What the proof asks GitHub of each id: its type, the repository it belongs to, and the
 * branches a merge or ref write would touch. Only types that carry a `repository` are asked
 * for one; any other object is not inside the bound repository.
 */
export const PROOF_QUERY = `query BrokerProof($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename
    ... on Repository { nameWithOwner }
    ... on RepositoryNode { repository { nameWithOwner } }
    ... on Ref { name prefix repository { nameWithOwner } }
    ... on Label { repository { nameWithOwner } }
    ... on Milestone { repository { nameWithOwner } }
    ... on PullRequestReviewThread { repository { nameWithOwner } }
    ... on Commit { repository { nameWithOwner } }
    ... on PullRequest { baseRefName headRefName }
  }
}`;

interface ProvenNode {
  __typename?: string;
  nameWithOwner?: string;
  repository?: { nameWithOwner?: string } | null;
  name?: string;
  prefix?: string;
  baseRefName?: string;
  headRefName?: string;
}

/** Resolves each id at GitHub; a refusal response when one is outside the session, else `null`. */
async function prove(url: string, headers: Headers, proofs: ProofRequest[], lent: Lent): Promise<Response | null> {
  let nodes: (ProvenNode | null)[];
  try {
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify({ query: PROOF_QUERY, variables: { ids: proofs.map((p) => p.id) } }), redirect: "manual" });
    if (response.status >= 500 || response.status === 429) throw new Error(`status ${response.status}`);
    const data = (await response.json()) as { data?: { nodes?: (ProvenNode | null)[] } };
    nodes = data.data?.nodes ?? [];
  } catch {
    // An outage is an outage: never a refusal the agent would take for a rule.
    return withIdentity(failureResponse(failure("github_unavailable", "GitHub could not be asked where these ids belong.", 5)), lent.identity);
  }
  const bound = lent.repository.toLowerCase();
  for (const [i, proof] of proofs.entries()) {
    const node = nodes[i] ?? null;
    const repository = (node?.__typename === "Repository" ? node.nameWithOwner : node?.repository?.nameWithOwner)?.toLowerCase();
    const inside = proof.mustBe === "repository" ? node?.__typename === "Repository" && repository === bound : repository === bound;
    if (!inside) return answer(graphQLProofRefusal("repository_mismatch", `${proof.at} is not in ${lent.repository}`), lent);
    if (!proof.branch) continue;
    const ref = branchOf(proof.branch, node!);
    if (!ref || !lent.policy.branches.some((p) => refMatches(p, ref))) {
      return answer(graphQLProofRefusal("branch_not_allowed", `${proof.at} writes ${ref ?? "a branch GitHub did not name"}, outside ${lent.policy.branches.join(", ")}`), lent);
    }
  }
  return null;
}

function branchOf(which: NonNullable<ProofRequest["branch"]>, node: ProvenNode): string | null {
  if (which === "base") return node.baseRefName ? `refs/heads/${node.baseRefName}` : null;
  if (which === "head") return node.headRefName ? `refs/heads/${node.headRefName}` : null;
  return node.name && node.prefix ? `${node.prefix}${node.name}` : null;
}
