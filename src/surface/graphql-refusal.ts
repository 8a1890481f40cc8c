/**
 * A refused GraphQL document, answered the way GitHub answers a bad one: HTTP 200 and
 * `{"errors": [...]}`, so `gh` prints the message. Pure.
 */
import type { GraphQLDecision, GraphQLRule } from "./graphql-policy";

/** Each rule in words, after the reason code in the message. */
const RULE_WORDS: Readonly<Record<Exclude<GraphQLRule, "invalid_query">, string>> = {
  repository_mismatch: "this session may only read its own repository; elsewhere only identity fields",
  insufficient_permission: "this session's capability may only read",
  branch_not_allowed: "this session may only write its own branches",
  operation_not_allowed: "this session may not run this operation through GraphQL",
};

export interface GraphQLErrorBody {
  errors: { type?: string; message: string; locations?: { line: number; column: number }[] }[];
}

/**
 * The answer to a refused document (status 200, JSON). A policy refusal is one
 * `{"type": "FORBIDDEN", "message": "<rule>: <rule in words>: <detail>"}`; an invalid
 * document gets graphql-js's validation errors (message and locations), as GitHub's are.
 */
export function graphQLRefusal(decision: Extract<GraphQLDecision, { ok: false }>): { status: 200; body: GraphQLErrorBody } {
  if (decision.rule === "invalid_query") {
    return {
      status: 200,
      body: { errors: decision.errors.map((e) => ({ message: e.message, ...(e.locations ? { locations: [...e.locations] } : {}) })) },
    };
  }
  return { status: 200, body: { errors: [{ type: "FORBIDDEN", message: `${decision.rule}: ${RULE_WORDS[decision.rule]}: ${decision.message}` }] } };
}

/** The same for a proof that failed at run time (an id outside the bound repository, a branch not allowed). */
export function graphQLProofRefusal(rule: "repository_mismatch" | "branch_not_allowed", message: string): { status: 200; body: GraphQLErrorBody } {
  return graphQLRefusal({ ok: false, rule, message });
}
