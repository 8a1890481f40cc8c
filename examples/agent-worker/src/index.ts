/**
 * An example agent-session Worker, written as a caller of the broker writes one: the client
 * imported by its package name, the `Env` from `wrangler types`.
 *
 * - `GET /?user=<userId>&repo=<owner/name>`: which credential the session would push with:
 *   the user's token (and the identity its commits carry), or the App installation token and
 *   why. The token itself never leaves this Worker.
 * - `GET /capability?user=<userId>&repo=<owner/name>`: a session capability's git remote,
 *   what a sandbox would `git clone` (the capability is the HTTP password). `user_or_app`:
 *   the session pushes as the user, and keeps pushing as the App's bot if the user revokes;
 *   its commits are authored as `committer` with a `Co-authored-by:` trailer for `coAuthor`.
 */
import { BrokerClient, brokerBinding, capabilityRemote, shouldFallBack, UserTokenClient } from "github-token-broker/client";

export default {
  async fetch(request, env): Promise<Response> {
    const url = new URL(request.url);
    const userId = url.searchParams.get("user") ?? "";
    const repository = url.searchParams.get("repo") ?? "";
    // `wrangler types` types the binding as plain `Service`; brokerBinding gives it the broker's methods.
    const broker = brokerBinding(env.TOKEN_BROKER);

    if (url.pathname === "/capability") {
      const grant = await new BrokerClient(broker).issueCapability(userId, { appType: "standard", repository, sessionId: `example-${Date.now()}`, ttlSeconds: 600, identity: "user_or_app" });
      if (!grant.ok) return Response.json({ reason: grant.reason }, { status: 409 });
      const trailer = grant.coAuthor ? `Co-authored-by: ${grant.coAuthor.name} <${grant.coAuthor.email}>` : null;
      return Response.json({ remote: capabilityRemote(grant), expiresAt: grant.expiresAt, author: `${grant.committer.name} <${grant.committer.email}>`, trailer });
    }

    // One client per agent session; here a request stands in for a session.
    const tokens = new UserTokenClient({ broker, userId, appType: "standard" });
    const result = await tokens.getToken(repository);
    if (result.ok) {
      // A real session would now run `git -c user.name=... -c user.email=... push` with the token.
      return Response.json({ credential: "user_token", expiresAt: result.expiresAt, author: `${result.committer.name} <${result.committer.email}>` });
    }
    if (shouldFallBack(result)) {
      return Response.json({ credential: "installation_token", reason: result.reason, retryAfterSeconds: result.retryAfterSeconds ?? null });
    }
    // invalid_request or unauthorized (isCallerBug): a bug in this Worker, never hidden behind the bot.
    return Response.json({ error: result.reason, message: result.message }, { status: 400 });
  },
} satisfies ExportedHandler<Env>;
