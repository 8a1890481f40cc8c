/**
 * An example agent-session Worker. `GET /?user=<userId>&repo=<owner/name>` answers which
 * credential the session would push with: the user's token (and the identity its commits
 * carry), or the App installation token and why.
 */
import { shouldFallBack, UserTokenClient, type TokenBrokerBinding } from "../../../src/client";

interface AgentEnv {
  TOKEN_BROKER: TokenBrokerBinding;
}

export default {
  async fetch(request: Request, env: AgentEnv): Promise<Response> {
    const url = new URL(request.url);
    const userId = url.searchParams.get("user") ?? "";
    const repository = url.searchParams.get("repo") ?? "";
    // One client per agent session; here a request stands in for a session.
    const tokens = new UserTokenClient({ broker: env.TOKEN_BROKER, userId, appType: "standard" });
    const result = await tokens.getToken(repository);
    if (shouldFallBack(result)) {
      return Response.json({ credential: "installation_token", reason: result.reason, retryAfterSeconds: result.retryAfterSeconds ?? null });
    }
    // A real session would now run: git -c user.name=... -c user.email=... push
    // with the token as the password. The token itself never leaves this Worker.
    return Response.json({
      credential: "user_token",
      expiresAt: result.expiresAt,
      author: `${result.committer.name} <${result.committer.email}>`,
    });
  },
};
