/** `POST /api/graphql` on AGENT_HOST (placeholder until the policy lands: refuses every document). */
export async function graphqlProxy(request: Request, _env: Env): Promise<Response> {
  await request.body?.cancel();
  return new Response(JSON.stringify({ errors: [{ type: "FORBIDDEN", message: "operation_not_allowed: GraphQL is not served" }] }), { headers: { "content-type": "application/json" } });
}
