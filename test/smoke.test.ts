import { beforeEach, describe, expect, it } from "vitest";
import { callApi, connectUser, emulator, publicFetch, requestToken } from "./support/helpers";

beforeEach(async () => {
  await emulator.reset();
});

describe("smoke", () => {
  it("health", async () => {
    expect((await publicFetch("/healthz")).status).toBe(200);
  });
  it("connects and issues a token", async () => {
    const confirmed = await connectUser("u1", { id: 101, login: "octo", name: "Octo Cat", repos: { "acme/app": "push" } });
    expect(confirmed).toEqual({ ok: true, status: "connected", appType: "standard", githubUserId: "101", githubLogin: "octo" });
    const conn = await callApi("GET", "/users/u1/connection?appType=standard");
    expect(conn.body.status).toBe("connected");
    const tok = await requestToken("u1", { repository: "acme/app" });
    expect(tok.status).toBe(200);
    expect(tok.body.committer.email).toBe("101+octo@users.noreply.github.com");
  });
});
