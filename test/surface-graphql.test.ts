/**
 * The GitHub-shaped surface's GraphQL half (`POST https://<AGENT_HOST>/api/graphql`), inside
 * workerd against the emulator's GraphQL (GitHub's real schema): what `gh` gets with a session
 * capability as its token. The policy itself is tested in graphql-policy*.test.ts; here, the
 * proxy: redemption, the run-time proofs of ids and branches, forwarding, identities.
 */
import { exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { AGENT_HOST } from "./support/env";
import { callApi, connectUser, control, emulator } from "./support/helpers";

const DEV = { id: 7171, login: "grafter", name: "Graf Ter", repos: { "acme/app": "push" as const, "acme/other": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

async function capability(userId: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await callApi("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "gql-1", branches: ["agent/*"], ...body });
  expect(res.status).toBe(200);
  return res.body.capability as string;
}

async function graphql(cap: string, query: string, variables: Record<string, unknown> = {}): Promise<{ status: number; identity: string | null; body: any }> {
  const res = await exports.default.fetch(
    new Request(`https://${AGENT_HOST}/api/graphql`, { method: "POST", headers: { authorization: `token ${cap}`, "content-type": "application/json" }, body: JSON.stringify({ query, variables }) }),
  );
  return { status: res.status, identity: res.headers.get("x-broker-identity"), body: await res.json() };
}

/** A pull request made directly at the emulator (as another session might have), in `repository`. */
async function seedPull(repository: string, head: string, base = "main"): Promise<string> {
  const seeded = await control<{ id: string; number: number }>("POST", "pulls", { repository, head, base, title: `from ${head}`, author: "grafter" });
  return seeded.id;
}

describe("the GitHub-shaped surface: GraphQL", () => {
  it("reads the bound repository with the user's token and says so", async () => {
    await connectUser("gql-1", DEV);
    const cap = await capability("gql-1");
    const res = await graphql(cap, 'query { repository(owner: "acme", name: "app") { nameWithOwner viewerPermission } viewer { login } }');
    expect(res.status).toBe(200);
    expect(res.identity).toBe("user");
    expect(res.body.data).toEqual({ repository: { nameWithOwner: "acme/app", viewerPermission: "WRITE" }, viewer: { login: "grafter" } });
  });

  it("refuses another repository, its objects by id, and writes outside the session, as GitHub answers a bad query", async () => {
    await connectUser("gql-2", DEV);
    const cap = await capability("gql-2");
    const pull = await capability("gql-2", { sessionId: "gql-pull", permission: "pull" });
    const otherPr = await seedPull("acme/other", "feature");
    const mainPr = await seedPull("acme/app", "agent/fix", "main");
    const cases: [string, string, string, Record<string, unknown>][] = [
      ["another repository", "repository_mismatch", 'query { repository(owner: "acme", name: "other") { issues(first: 1) { totalCount } } }', {}],
      ["another repository through a variable", "repository_mismatch", "query($o: String!, $n: String!) { repository(owner: $o, name: $n) { id } }", { o: "acme", n: "other" }],
      ["the owner's other repositories", "repository_mismatch", 'query { repository(owner: "acme", name: "app") { owner { repositories(first: 5) { nodes { name } } } } }', {}],
      ["another repository's pull request by id", "repository_mismatch", "query($id: ID!) { node(id: $id) { ... on PullRequest { title body } } }", { id: otherPr }],
      ["a merge into main", "branch_not_allowed", "mutation($id: ID!) { mergePullRequest(input: {pullRequestId: $id}) { pullRequest { merged } } }", { id: mainPr }],
      ["a mutation with a pull capability", "insufficient_permission", "mutation($id: ID!) { addComment(input: {subjectId: $id, body: \"hi\"}) { clientMutationId } }", { id: mainPr }],
      ["a search across GitHub", "repository_mismatch", 'query { search(query: "is:pr", type: ISSUE, first: 5) { issueCount } }', {}],
    ];
    for (const [name, rule, query, variables] of cases) {
      const res = await graphql(name.includes("pull capability") ? pull : cap, query, variables);
      expect(res.status, name).toBe(200);
      expect(res.body.data, name).toBeUndefined();
      expect(res.body.errors, name).toEqual([{ type: "FORBIDDEN", message: expect.stringMatching(new RegExp(`^${rule}: `)) }]);
    }
    const { pulls } = await control<{ pulls: { number: number; state: string }[] }>("GET", "pulls?repository=acme/app");
    expect(pulls.every((p) => p.state === "OPEN")).toBe(true);
  });

  it("writes what the session may: a comment on its own pull request, proven by id", async () => {
    await connectUser("gql-3", DEV);
    const cap = await capability("gql-3");
    const id = await seedPull("acme/app", "agent/fix");
    const res = await graphql(cap, "mutation($id: ID!) { addComment(input: {subjectId: $id, body: \"Done.\"}) { commentEdge { node { body author { login } } } } }", { id });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.addComment.commentEdge.node).toEqual({ body: "Done.", author: { login: "grafter" } });
  });

  it("answers a malformed body and an invalid document like GitHub, and a forged capability wakes nothing", async () => {
    await connectUser("gql-4", DEV);
    const cap = await capability("gql-4");
    const bad = await exports.default.fetch(new Request(`https://${AGENT_HOST}/api/graphql`, { method: "POST", headers: { authorization: `token ${cap}` }, body: "{" }));
    expect(bad.status).toBe(400);
    const invalid = await graphql(cap, 'query { repository(owner: "acme", name: "app") { nope } }');
    expect(invalid.body.errors[0].message).toContain("Cannot query field \"nope\" on type \"Repository\"");
    const forged = await graphql(`${cap.slice(0, -2)}xx`, "query { viewer { login } }");
    expect(forged.status).toBe(401);
  });
});
