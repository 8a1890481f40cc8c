/**
 * The branch policy at the git proxy: before a `POST .../git-receive-pack` goes upstream, its
 * ref-update commands are read (receive-pack.ts) and judged (ref-policy.ts). A push with one
 * ref outside the session's policy is refused whole, in git's own `report-status`, with
 * HTTP 200 as git expects a refusal, so `git push` prints
 * `! [remote rejected] main (branch not allowed for this session: agent/*)` for every ref;
 * nothing reaches GitHub. An allowed push goes on with a body that replays every byte (the
 * pack is streamed, never buffered).
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
import { decidePush, refusalText, type PushPolicy } from "./ref-policy";

/** The check's verdict; `refs` (the refs the push updates) is set once the commands were read. */
export type PushCheck = { ok: true; body: ReadableStream<Uint8Array> | null; refs: string[] } | { ok: false; response: Response; refs?: string[] };

/** Checks a receive-pack request against `policy`; see the module comment. */
export async function checkPush(request: Request, policy: PushPolicy, userId: string): Promise<PushCheck> {
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
  const section = await readCommandSection(inspected);
  if (!section.ok) {
    await forward?.cancel();
    return refuse(section.message);
  }
  if (forward) await section.body.cancel();
  const body = forward ?? section.body;
  const decision = decidePush(policy, section.commands);
  const refs = section.commands.map((c) => c.ref);
  if (decision.allowed) return { ok: true, body, refs };
  await discard(body);
  logEvent({ event: "push_refused", userId, outcome: decision.refusals.find((r) => r.reason !== "refused_as_whole")!.reason, refs: decision.refusals.length });
  if (!wantsReport(section.capabilities)) {
    const first = decision.refusals.find((r) => r.reason !== "refused_as_whole")!;
    return { ok: false, refs, response: gitFailure(failure("insufficient_permission", `${first.ref}: ${refusalText(policy, first.reason)}`)) };
  }
  const report = reportStatus(
    section.capabilities,
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

function refuse(message: string): PushCheck {
  return { ok: false, response: gitFailure(failure("invalid_upstream_request", message)) };
}
