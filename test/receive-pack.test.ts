/**
 * The receive-pack command reader and the ref policy, property-tested: generated pushes (any
 * mix of allowed and forbidden refs, SHA-1 and SHA-256, shallow lines, a pack after the
 * flush, cut into arbitrary chunks), arbitrary bytes, truncated and oversized command lists.
 * Whatever comes in, the reader never throws, agrees with a plain whole-buffer reference
 * parser, never lets a forbidden ref through, and replays the input byte for byte.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes, MAX_COMMANDS, MAX_SECTION_BYTES, pktLine, readCommandSection, reportStatus } from "../src/proxy/receive-pack";
import { decidePush, fullPattern, parsePushPolicy, refMatches, type PushPolicy, type RefCommand } from "../src/proxy/ref-policy";

const RUNS = 300;
const enc = new TextEncoder();

// ---------------------------------------------------------------- helpers

/** A stream that yields `bytes` cut at `cuts`, counting how much was pulled. */
function streamOf(bytes: Uint8Array, cuts: number[] = []): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b).concat(bytes.byteLength);
  let i = 0;
  let last = 0;
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        while (i < points.length && points[i]! <= last) i++;
        if (i >= points.length) return controller.close();
        const chunk = bytes.slice(last, points[i]);
        pulled += chunk.byteLength;
        last = points[i++]!;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulled };
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  return concatBytes(parts);
}

function cat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

function encodePush(commands: RefCommand[], caps: string[], shallow: string[], tail: Uint8Array): Uint8Array {
  const lines = shallow.map((id) => pktLine(`shallow ${id}\n`));
  commands.forEach((c, i) => {
    const text = `${c.oldId} ${c.newId} ${c.ref}`;
    lines.push(pktLine(i === 0 ? cat(enc.encode(text), new Uint8Array([0]), enc.encode(`${caps.join(" ")}\n`)) : enc.encode(`${text}\n`)));
  });
  return cat(...lines, enc.encode("0000"), tail);
}

/**
 * The reference: a plain parser over the whole buffer, written for clarity, not speed:
 * the commands up to the first flush, or `null` when that is not a well-formed list.
 */
function referenceParse(bytes: Uint8Array): { commands: RefCommand[]; pushCert: boolean } | null {
  const text = new TextDecoder("latin1").decode(bytes);
  const commands: RefCommand[] = [];
  let at = 0;
  let sectionBytes = 0;
  while (true) {
    if (at + 4 > text.length || !/^[0-9a-fA-F]{4}$/.test(text.slice(at, at + 4))) return null;
    const len = parseInt(text.slice(at, at + 4), 16);
    if (len === 0) return { commands, pushCert: false };
    if (len <= 4 || len > 65520 || at + len > text.length) return null;
    sectionBytes += len;
    if (sectionBytes > MAX_SECTION_BYTES) return null;
    const raw = bytes.subarray(at + 4, at + len);
    at += len;
    const nul = raw.indexOf(0);
    const decode = (b: Uint8Array) => {
      try {
        return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(b);
      } catch {
        return null;
      }
    };
    let line = decode(nul >= 0 ? raw.subarray(0, nul) : raw);
    if (line === null) return null;
    line = line.replace(/\n$/, "");
    if (commands.length === 0 && line.startsWith("push-cert")) return { commands, pushCert: true };
    if (nul >= 0 && decode(raw.subarray(nul + 1)) === null) return null;
    if (commands.length === 0 && nul < 0 && /^shallow [0-9a-f]{40}(?:[0-9a-f]{24})?$/.test(line)) continue;
    if (nul >= 0 && commands.length > 0) return null;
    const m = /^([0-9a-f]{40}(?:[0-9a-f]{24})?) ([0-9a-f]{40}(?:[0-9a-f]{24})?) (refs\/[^ ]+)$/.exec(line);
    if (!m || m[1]!.length !== m[2]!.length) return null;
    if (commands.length > 0 && commands[0]!.oldId.length !== m[1]!.length) return null;
    const ref = m[3]!;
    const badRef =
      ref.length > 1024 ||
      /[\x00-\x20\x7f~^:?*[\\]|\.\.|@\{|\/\/|\/$|\.lock(\/|$)|\/\.|\.(\/|$)/.test(ref);
    if (badRef || commands.length >= MAX_COMMANDS) return null;
    commands.push({ oldId: m[1]!, newId: m[2]!, ref });
  }
}

/** The reference policy: glob patterns as regular expressions. */
function referenceAllowed(policy: PushPolicy, c: RefCommand): boolean {
  if (/^0+$/.test(c.newId) && !policy.allowDelete) return false;
  return policy.branches.some((p) => {
    const full = fullPattern(p);
    if (c.ref.startsWith("refs/tags/") && !full.startsWith("refs/tags/")) return false;
    const segs = full.split("/");
    const re = segs
      .map((s, i) => {
        if (s === "**") return i === segs.length - 1 ? "[^/]+(?:/[^/]+)*" : "(?:[^/]+/)*";
        const body = s === "*" ? "[^/]+" : s.split("*").map((x) => x.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*");
        return i === segs.length - 1 ? body : `${body}/`;
      })
      .join("");
    return new RegExp(`^${re}$`).test(c.ref);
  });
}

// ---------------------------------------------------------------- generators

const hexId = (len: 40 | 64) => fc.stringMatching(len === 40 ? /^[0-9a-f]{40}$/ : /^[0-9a-f]{64}$/);
const segment = fc.constantFrom("agent", "main", "feature", "login", "x", "v1", "v1.2", "fix-1", "a");
const refName = fc
  .tuple(fc.constantFrom("refs/heads/", "refs/heads/", "refs/tags/", "refs/notes/"), fc.array(segment, { minLength: 1, maxLength: 4 }))
  .map(([prefix, segs]) => prefix + segs.join("/"));
const patterns = fc.uniqueArray(
  fc.constantFrom("agent/*", "feature/login", "**", "refs/tags/v*", "agent/**", "x/**/a", "refs/heads/x/*", "*", "main", "refs/**", "fix-*", "refs/tags/**"),
  { minLength: 1, maxLength: 4 },
);
const policyArb = fc.record({ branches: patterns, allowDelete: fc.boolean() });
const commandsArb = fc.constantFrom(40 as const, 64 as const).chain((len) =>
  fc.array(
    fc.record({
      oldId: fc.oneof(hexId(len), fc.constant("0".repeat(len))),
      newId: fc.oneof({ weight: 4, arbitrary: hexId(len) }, { weight: 1, arbitrary: fc.constant("0".repeat(len)) }),
      ref: refName,
    }),
    { minLength: 1, maxLength: 8 },
  ),
);
const capsArb = fc.subarray(["report-status", "report-status-v2", "side-band-64k", "quiet", "atomic", "ofs-delta", "agent=git/2.43.0", "push-options"]);
const packTail = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 3000 }).map((b) => cat(enc.encode("PACK"), b)));
const cutsArb = fc.array(fc.nat({ max: 5000 }), { maxLength: 12 });

// ---------------------------------------------------------------- properties

describe("receive-pack command reader", () => {
  it("reads generated pushes exactly, in any chunking, and replays them byte for byte", async () => {
    await fc.assert(
      fc.asyncProperty(commandsArb, capsArb, fc.array(hexId(40), { maxLength: 2 }), packTail, cutsArb, async (commands, caps, shallow, tail, cuts) => {
        const bytes = encodePush(commands, caps, shallow, tail);
        const { stream } = streamOf(bytes, cuts);
        const section = await readCommandSection(stream);
        expect(section.ok).toBe(true);
        if (!section.ok) return;
        expect(section.commands).toEqual(commands);
        expect(section.capabilities).toEqual(caps);
        expect(await drain(section.body)).toEqual(bytes);
      }),
      { numRuns: RUNS },
    );
  });

  it("decides exactly as the reference policy: one forbidden ref refuses the whole push", async () => {
    await fc.assert(
      fc.asyncProperty(commandsArb, policyArb, cutsArb, async (commands, policy, cuts) => {
        const section = await readCommandSection(streamOf(encodePush(commands, ["report-status"], [], new Uint8Array(0)), cuts).stream);
        if (!section.ok) throw new Error(section.message);
        const decision = decidePush(policy, section.commands);
        const expected = commands.every((c) => referenceAllowed(policy, c));
        expect(decision.allowed).toBe(expected);
        if (!decision.allowed) {
          expect(decision.refusals.map((r) => r.ref)).toEqual(commands.map((c) => c.ref));
          commands.forEach((c, i) => expect(decision.refusals[i]!.reason === "refused_as_whole").toBe(referenceAllowed(policy, c)));
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it("arbitrary and mutated bytes: never throws, and agrees with the reference on what is a command list", async () => {
    const mutated = fc
      .tuple(commandsArb, capsArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([commands, caps, flips]) => {
        const bytes = encodePush(commands, caps, [], enc.encode("PACK"));
        for (const [at, value] of flips) bytes[at % bytes.byteLength] = value;
        return bytes;
      });
    const arbitrary = fc.oneof(
      fc.uint8Array({ maxLength: 400 }),
      mutated,
      fc.array(fc.oneof(fc.string({ maxLength: 80 }).map((s) => pktLine(s)), fc.constantFrom(enc.encode("0000"), enc.encode("0001"), enc.encode("0003"), enc.encode("zzzz"))), { maxLength: 6 }).map((ls) => cat(...ls)),
    );
    await fc.assert(
      fc.asyncProperty(arbitrary, cutsArb, policyArb, async (bytes, cuts, policy) => {
        const section = await readCommandSection(streamOf(bytes, cuts).stream);
        const reference = referenceParse(bytes);
        if (reference === null || reference.pushCert) {
          expect(section.ok).toBe(false);
          if (!section.ok) expect(section.kind).toBe(reference?.pushCert ? "push_cert" : "malformed");
          return;
        }
        expect(section.ok).toBe(true);
        if (!section.ok) return;
        expect(section.commands).toEqual(reference.commands);
        // Never a forbidden ref through: allowed only when the reference allows every one.
        expect(decidePush(policy, section.commands).allowed).toBe(reference.commands.every((c) => referenceAllowed(policy, c)));
        expect(await drain(section.body)).toEqual(bytes);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it("truncated anywhere before the flush: malformed, never a partial command list", async () => {
    await fc.assert(
      fc.asyncProperty(commandsArb, capsArb, fc.nat(), cutsArb, async (commands, caps, cutAt, cuts) => {
        const full = encodePush(commands, caps, [], new Uint8Array(0));
        const truncated = full.slice(0, cutAt % full.byteLength); // drops at least the flush's last byte
        const section = await readCommandSection(streamOf(truncated, cuts).stream);
        expect(section.ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it("an oversized command list is refused without reading the pack behind it", async () => {
    const id = "a".repeat(40);
    const many = Array.from({ length: MAX_COMMANDS + 1 }, (_, i) => ({ oldId: id, newId: id, ref: `refs/heads/agent/${i}` }));
    const big = encodePush(many, ["report-status"], [], new Uint8Array(10 * 1024 * 1024));
    const counted = streamOf(big, Array.from({ length: 200 }, (_, i) => (i + 1) * 16 * 1024));
    const section = await readCommandSection(counted.stream);
    expect(section).toMatchObject({ ok: false, kind: "malformed" });
    expect(counted.pulled()).toBeLessThanOrEqual(MAX_SECTION_BYTES + 16 * 1024);

    const longRefs = Array.from({ length: 80 }, (_, i) => ({ oldId: id, newId: id, ref: `refs/heads/agent/${i}-${"x".repeat(900)}` }));
    const tooLong = await readCommandSection(streamOf(encodePush(longRefs, [], [], new Uint8Array(0))).stream);
    expect(tooLong).toMatchObject({ ok: false, kind: "malformed" });
    expect((tooLong as { message: string }).message).toContain("64 KiB");
  });

  it("a signed push (push-cert) is refused as unsupported; an empty body and a bare flush are told apart", async () => {
    const cert = cat(pktLine("push-cert\0report-status\n"), pktLine("certificate version 0.1\n"), enc.encode("0000"));
    expect(await readCommandSection(streamOf(cert).stream)).toMatchObject({ ok: false, kind: "push_cert" });
    expect(await readCommandSection(streamOf(new Uint8Array(0)).stream)).toMatchObject({ ok: false, kind: "malformed" });
    expect(await readCommandSection(null)).toMatchObject({ ok: false, kind: "malformed" });
    // git's probe before a large push: a flush and nothing else. Zero commands, nothing to refuse.
    const probe = await readCommandSection(streamOf(enc.encode("0000")).stream);
    expect(probe).toMatchObject({ ok: true, commands: [] });
  });

  it("cancelling the replayed stream cancels the request body", async () => {
    let cancelled = false;
    const bytes = encodePush([{ oldId: "b".repeat(40), newId: "c".repeat(40), ref: "refs/heads/main" }], [], [], new Uint8Array(100));
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.slice(0, bytes.byteLength - 50));
      },
      cancel() {
        cancelled = true;
      },
    });
    const section = await readCommandSection(source);
    if (!section.ok) throw new Error(section.message);
    await section.body.cancel();
    for (let i = 0; i < 50 && !cancelled; i++) await new Promise((r) => setTimeout(r, 2));
    expect(cancelled).toBe(true);
  });
});

describe("ref patterns", () => {
  it("* within a segment, ** across, bare names are branches, tags only by refs/tags/", () => {
    expect(refMatches("agent/*", "refs/heads/agent/fix-1")).toBe(true);
    expect(refMatches("agent/*", "refs/heads/agent/a/b")).toBe(false);
    expect(refMatches("agent/**", "refs/heads/agent/a/b")).toBe(true);
    expect(refMatches("agent/**", "refs/heads/agent")).toBe(false);
    expect(refMatches("x/**/a", "refs/heads/x/a")).toBe(true);
    expect(refMatches("feature/login", "refs/heads/feature/login")).toBe(true);
    expect(refMatches("feature/login", "refs/heads/feature/login2")).toBe(false);
    expect(refMatches("**", "refs/tags/v1")).toBe(false);
    expect(refMatches("refs/**", "refs/tags/v1")).toBe(false);
    expect(refMatches("refs/tags/v*", "refs/tags/v1.2")).toBe(true);
    expect(refMatches("agent/*", "refs/tags/agent/x")).toBe(false);
  });

  it("a ref name git would refuse matches no pattern, however it is dressed", () => {
    // `..`, `.`, empty segments, `.lock`, control characters, `@{`, a trailing dot or slash: a
    // segment-by-segment match would let `refs/heads/agent/../main` pass `agent/**`.
    const smuggle = fc.constantFrom("..", ".", "", "x.lock", ".hidden", "a\u0000b", "a b", "a~1", "a^", "a:b", "a?", "a[", "a\\b", "@{u}", "x.", "a\u007f");
    const plain = fc.constantFrom("agent", "main", "x", "a", "fix-1");
    const refArb = fc
      .tuple(fc.array(plain, { maxLength: 3 }), smuggle, fc.array(fc.oneof(plain, smuggle), { maxLength: 3 }))
      .map(([before, bad, after]) => `refs/heads/${[...before, bad, ...after].join("/")}`);
    const pattern = fc.constantFrom("agent/*", "agent/**", "**", "refs/**", "*", "x/**/a", "refs/heads/**", "main");
    fc.assert(
      fc.property(pattern, refArb, (p, ref) => {
        expect(refMatches(p, ref), `${p} ~ ${JSON.stringify(ref)}`).toBe(false);
      }),
      { numRuns: 2000 },
    );
    expect(refMatches("agent/**", "refs/heads/agent/../main")).toBe(false);
    expect(decidePush({ branches: ["agent/**"], allowDelete: false }, [{ oldId: "0".repeat(40), newId: "1".repeat(40), ref: "refs/heads/agent/../main" }]).allowed).toBe(false);
  });

  it("deletes need allowDelete, and still a matching pattern", () => {
    const del = { oldId: "1".repeat(40), newId: "0".repeat(40), ref: "refs/heads/agent/x" };
    expect(decidePush({ branches: ["agent/*"], allowDelete: false }, [del])).toEqual({ allowed: false, refusals: [{ ref: del.ref, reason: "delete_not_allowed" }] });
    expect(decidePush({ branches: ["agent/*"], allowDelete: true }, [del])).toEqual({ allowed: true });
    expect(decidePush({ branches: ["feature/*"], allowDelete: true }, [del]).allowed).toBe(false);
  });

  it("junk patterns are invalid_request at issue time; no branches means every branch, no tag, no delete", () => {
    for (const junk of [[], "agent/*", [""], ["a//b"], ["../main"], ["a b"], ["x~1"], ["a/***"], ["a/**b"], ["refs/"], [".hidden"], ["x.lock"], [1], Array(33).fill("a"), ["a".repeat(201)]]) {
      expect(parsePushPolicy(junk, undefined)).toMatchObject({ ok: false, reason: "invalid_request" });
    }
    expect(parsePushPolicy(["agent/*"], "yes")).toMatchObject({ ok: false, reason: "invalid_request" });
    expect(parsePushPolicy(undefined, undefined)).toEqual({ ok: true, value: { branches: ["**"], allowDelete: false } });
    expect(parsePushPolicy(["agent/*", "refs/tags/v*"], true)).toEqual({ ok: true, value: { branches: ["agent/*", "refs/tags/v*"], allowDelete: true } });
  });

  it("pathological patterns stay fast (no backtracking blow-up)", () => {
    const ref = `refs/heads/${Array(200).fill("a").join("/")}/b`;
    const t0 = Date.now();
    expect(refMatches(Array(30).fill("**").join("/") + "/c", ref)).toBe(false);
    expect(refMatches("*a*a*a*a*a*a*a*a*a*a*a*b", `refs/heads/${"a".repeat(1000)}`)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describe("report-status", () => {
  it("without side-band: unpack ok, one ng per ref, a flush", () => {
    const out = new TextDecoder().decode(reportStatus(["report-status"], [{ ref: "refs/heads/main", text: "branch not allowed for this session: agent/*" }]));
    expect(out).toBe("000eunpack ok\n0044ng refs/heads/main branch not allowed for this session: agent/*\n0000");
  });

  it("with side-band-64k: the report in band 1 (and a notice in band 2), then a flush", () => {
    const out = reportStatus(["report-status", "side-band-64k"], [{ ref: "refs/heads/main", text: "nope" }], "hello");
    const text = new TextDecoder("latin1").decode(out);
    expect(text.startsWith("000b\x02hello\n")).toBe(true);
    expect(text).toContain("\x01000eunpack ok\n001cng refs/heads/main nope\n0000");
    expect(text.endsWith("0000")).toBe(true);
  });
});
