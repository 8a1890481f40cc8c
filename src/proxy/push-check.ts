/**
 * The branch policy at the git proxy, in two steps around the redemption:
 *
 * 1. {@link readPush}: before the capability is redeemed, the ref-update commands at the head
 *    of a `POST .../git-receive-pack` are read (receive-pack.ts), bounded in size (64 KiB)
 *    and in time ({@link COMMANDS_TIMEOUT_MS}). The client decides how long that takes, so it
 *    happens while the proxy holds no token: the token is asked for only once the commands
 *    are in, and goes upstream with no wait on the client in between (docs/lifecycle.md).
 * 2. {@link judgePush}: the commands against the redeemed capability's policy (ref-policy.ts).
 *    A push with one ref outside the policy is refused whole, in git's own `report-status`,
 *    with HTTP 200 as git expects a refusal, so `git push` prints
 *    `! [remote rejected] main (branch not allowed for this session: agent/*)` for every ref;
 *    nothing reaches GitHub. An allowed push goes on with a body that replays every byte (the
 *    pack is streamed, never buffered).
 *
 * The refused push's body is read to its end and dropped before the answer goes out: git
 * sends a push over its 1 MiB post buffer while it waits for the answer, and an answer that
 * cuts the upload short makes it print `curl 55 Send failure: Broken pipe` and then
 * "Everything up-to-date" instead of the refusal. Dropping costs bandwidth, never memory,
 * and stops at {@link MAX_DISCARD_BYTES} (GitHub's own limit on a push).
 */
import { failure } from "../contract";
import { gitFailure } from "../http/respond";
import { logEvent } from "../log";
import { readCommandSection, reportStatus, wantsReport } from "./receive-pack";
import { decidePush, refusalText, type PushPolicy, type RefCommand } from "./ref-policy";

/** How long a client may take to send its ref-update commands (git sends them at once). */
export const COMMANDS_TIMEOUT_MS = 30_000;

/** A push whose commands were read: what to judge, and the body to forward (every byte). */
export interface ReadPush {
  ok: true;
  commands: RefCommand[];
  capabilities: string[];
  body: ReadableStream<Uint8Array> | null;
}

/** A push whose commands could not be read: the answer, already built; the body is cancelled. */
export interface UnreadablePush {
  ok: false;
  response: Response;
}

/** The verdict on a read push; `refs` are the refs it updates, for the audit trail. */
export type PushCheck = { ok: true; body: ReadableStream<Uint8Array> | null; refs: string[] } | { ok: false; response: Response; refs: string[] };

/** Step 1: reads a receive-pack request's commands; see the module comment. */
export async function readPush(request: Request, timeoutMs = COMMANDS_TIMEOUT_MS): Promise<ReadPush | UnreadablePush> {
  const encoding = (request.headers.get("content-encoding") ?? "").trim().toLowerCase();
  if (encoding !== "" && encoding !== "identity" && encoding !== "gzip") {
    await request.body?.cancel();
    return refuse("The push's Content-Encoding is not one git uses.");
  }
  let inspected = request.body;
  let forward: ReadableStream<Uint8Array> | null = null;
  if (encoding === "gzip" && request.body) {
    // git does not compress pushes, but a client may: the commands are read from a
    // decompressed copy, and the compressed bytes go upstream as they came.
    const [a, b] = request.body.tee();
    inspected = a.pipeThrough(new DecompressionStream("gzip"));
    forward = b;
  }
  const late = new AbortController();
  const timer = setTimeout(() => late.abort(), timeoutMs);
  const section = await readCommandSection(inspected, late.signal).finally(() => clearTimeout(timer));
  if (late.signal.aborted && !section.ok) {
    await forward?.cancel();
    return refuse(`The push's ref-update commands did not arrive within ${timeoutMs / 1000} seconds.`);
  }
  if (!section.ok) {
    await forward?.cancel();
    return refuse(section.message);
  }
  if (forward) await section.body.cancel();
  return { ok: true, commands: section.commands, capabilities: section.capabilities, body: forward ?? section.body };
}

/** Step 2: the read push against the capability's policy; see the module comment. */
export async function judgePush(push: ReadPush, policy: PushPolicy, userId: string): Promise<PushCheck> {
  const decision = decidePush(policy, push.commands);
  const refs = push.commands.map((c) => c.ref);
  if (decision.allowed) return { ok: true, body: push.body, refs };
  if (push.body) await discard(push.body);
  logEvent({ event: "push_refused", userId, outcome: decision.refusals.find((r) => r.reason !== "refused_as_whole")!.reason, refs: decision.refusals.length });
  if (!wantsReport(push.capabilities)) {
    const first = decision.refusals.find((r) => r.reason !== "refused_as_whole")!;
    return { ok: false, refs, response: gitFailure(failure("insufficient_permission", `${first.ref}: ${refusalText(policy, first.reason)}`)) };
  }
  const report = reportStatus(
    push.capabilities,
    decision.refusals.map((r) => ({ ref: r.ref, text: refusalText(policy, r.reason) })),
    `The broker refused this push: this session may push to ${policy.branches.join(", ")}${policy.allowDelete ? "" : " and may not delete refs"}.`,
  );
  return {
    ok: false,
    refs,
    response: new Response(report, {
      status: 200,
      headers: { "content-type": "application/x-git-receive-pack-result", "cache-control": "no-cache" },
    }),
  };
}

/** GitHub refuses pushes over 2 GiB; a refused push is never read further than that. */
const MAX_DISCARD_BYTES = 2 * 1024 ** 3;

/** Reads `body` to its end (or the limit), keeping nothing. */
async function discard(body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  let seen = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      seen += value.byteLength;
      if (seen > MAX_DISCARD_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The client went away: nobody is left to answer.
  }
}

function refuse(message: string): UnreadablePush {
  return { ok: false, response: gitFailure(failure("invalid_upstream_request", message)) };
}
