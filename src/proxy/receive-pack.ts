/**
 * The head of a `git-receive-pack` request (a push), read without buffering the pack.
 *
 * A push body is pkt-lines (`<4 hex digits: length including themselves><payload>`):
 *
 *     *( "shallow" SP <id> )                     only before the commands
 *     <old-id> SP <new-id> SP <ref> NUL <capabilities>
 *     *( <old-id> SP <new-id> SP <ref> )
 *     0000                                        flush: the command list ends
 *     [push options, flush] [the pack]            untouched, never parsed here
 *
 * {@link readCommandSection} consumes the stream only up to that first flush, then hands back
 * a new stream that replays the bytes it read followed by the untouched rest, so the pack
 * flows on as it came. What it holds is bounded ({@link MAX_SECTION_BYTES} plus one chunk),
 * whatever the pack's size. Object ids are SHA-1 (40 hex) or SHA-256 (64 hex).
 *
 * A signed push (`push-cert`) is refused as unsupported: its commands sit inside a
 * certificate the proxy would have to parse as well, and agents do not sign pushes.
 *
 * Also {@link reportStatus}: the refusal as git's own `report-status` answer, so `git push`
 * prints `! [remote rejected] <ref> (<reason>)` for every ref.
 */
import { isValidRefName, type RefCommand } from "./ref-policy";

/** The command section may be at most this long (git's own is a few hundred bytes a ref). */
export const MAX_SECTION_BYTES = 64 * 1024;
/** At most this many ref updates in one push. */
export const MAX_COMMANDS = 1000;
/** git's largest pkt-line (LARGE_PACKET_MAX). */
const MAX_PKT = 65520;

export type CommandSection =
  | {
      ok: true;
      commands: RefCommand[];
      /** The capabilities after the NUL of the first command (`report-status`, `side-band-64k`, ...). */
      capabilities: string[];
      /** The whole request body again, byte for byte: what was read, then the rest. */
      body: ReadableStream<Uint8Array>;
    }
  | {
      ok: false;
      /** `push_cert`: a signed push, unsupported; `malformed`: anything else that is not a command list. */
      kind: "malformed" | "push_cert";
      message: string;
    };

/** A parse outcome before the stream bookkeeping. */
type Parsed = { done: true; commands: RefCommand[]; capabilities: string[] } | { done: false } | { error: "malformed" | "push_cert"; message: string };

/**
 * Reads the command section at the head of `body`. On failure the source stream is
 * cancelled; on success nothing is lost: the returned `body` yields every byte of the input.
 * `signal` gives up: the source is cancelled and the outcome is `malformed`.
 */
export async function readCommandSection(body: ReadableStream<Uint8Array> | null, signal?: AbortSignal): Promise<CommandSection> {
  if (!body) return { ok: false, kind: "malformed", message: "The push has no body." };
  const reader = body.getReader();
  const giveUp = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener("abort", giveUp);
  try {
    return await readSection(body, reader);
  } finally {
    signal?.removeEventListener("abort", giveUp);
  }
}

async function readSection(body: ReadableStream<Uint8Array>, reader: ReadableStreamDefaultReader<Uint8Array>): Promise<CommandSection> {
  const chunks: Uint8Array[] = [];
  let buffered: Uint8Array = new Uint8Array(0);
  const parser = new SectionParser();
  for (;;) {
    let step: ReadableStreamReadResult<Uint8Array>;
    try {
      step = await reader.read();
    } catch {
      return { ok: false, kind: "malformed", message: "The push body could not be read." };
    }
    if (step.done) {
      return { ok: false, kind: "malformed", message: "The push ended before its command list did." };
    }
    const chunk = step.value instanceof Uint8Array ? step.value : new Uint8Array(step.value as ArrayBufferLike);
    if (chunk.byteLength === 0) continue;
    chunks.push(chunk);
    // Only the part not yet parsed is kept for parsing, and never more than the section's bound.
    buffered = concat(buffered, chunk.subarray(0, Math.max(0, MAX_SECTION_BYTES + 4 - parser.consumed - buffered.byteLength)));
    const result = parser.feed(buffered);
    if ("error" in result) {
      await reader.cancel().catch(() => undefined);
      return { ok: false, kind: result.error, message: result.message };
    }
    buffered = buffered.subarray(parser.lastTake);
    // Not done: what is left is a partial pkt-line within the bound, so the bound on
    // `buffered` above never drops a byte the parser still needs.
    if (result.done) return { ok: true, commands: result.commands, capabilities: result.capabilities, body: replay(chunks, body, reader) };
  }
}

/** The pkt-line state machine over the command section. */
class SectionParser {
  /** Bytes of complete pkt-lines consumed so far. */
  consumed = 0;
  /** Bytes the last {@link feed} consumed from its input. */
  lastTake = 0;
  readonly #commands: RefCommand[] = [];
  #capabilities: string[] = [];
  #idLength = 0;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  /** Consumes the complete pkt-lines at the head of `data`. */
  feed(data: Uint8Array): Parsed {
    let at = 0;
    this.lastTake = 0;
    while (data.byteLength - at >= 4) {
      const length = hexLength(data, at);
      if (length === null) return malformed("A pkt-line length is not four hex digits.");
      if (length === 0) {
        this.consumed += 4;
        this.lastTake = at + 4;
        return { done: true, commands: this.#commands, capabilities: this.#capabilities };
      }
      if (length < 4 || length > MAX_PKT) return malformed("A pkt-line has an impossible length.");
      if (length === 4) return malformed("An empty pkt-line in the command list.");
      if (this.consumed + length > MAX_SECTION_BYTES) return malformed("The push's command list is longer than 64 KiB.");
      if (data.byteLength - at < length) break;
      const error = this.#line(data.subarray(at + 4, at + length));
      if (error) return error;
      at += length;
      this.consumed += length;
      this.lastTake = at;
    }
    return { done: false };
  }

  #line(payload: Uint8Array): Parsed | null {
    let text: string;
    const nul = payload.indexOf(0);
    const head = nul >= 0 ? payload.subarray(0, nul) : payload;
    try {
      text = this.#decoder.decode(head);
    } catch {
      return malformed("A command is not valid UTF-8.");
    }
    if (text.endsWith("\n")) text = text.slice(0, -1);
    const first = this.#commands.length === 0;
    if (first && text.startsWith("push-cert")) {
      return { error: "push_cert", message: "Signed pushes (push-cert) are not supported through the broker's proxy." };
    }
    if (first && nul < 0 && text.startsWith("shallow ")) {
      return isObjectId(text.slice(8)) ? null : malformed("A shallow line has no valid object id.");
    }
    if (nul >= 0 && !first) return malformed("Capabilities may follow only the first command.");
    if (nul >= 0) {
      let caps: string;
      try {
        caps = this.#decoder.decode(payload.subarray(nul + 1));
      } catch {
        return malformed("The capability list is not valid UTF-8.");
      }
      this.#capabilities = caps.replace(/\n$/, "").split(" ").filter((c) => c !== "");
    }
    const parts = text.split(" ");
    if (parts.length !== 3) return malformed("A command is not '<old-id> <new-id> <ref>'.");
    const [oldId, newId, ref] = parts as [string, string, string];
    if (!isObjectId(oldId) || oldId.length !== newId.length || !isObjectId(newId)) return malformed("A command has an invalid object id.");
    if (this.#idLength === 0) this.#idLength = oldId.length;
    if (oldId.length !== this.#idLength) return malformed("The commands mix object id formats.");
    if (!isValidRefName(ref)) return malformed("A command names an invalid ref.");
    if (this.#commands.length >= MAX_COMMANDS) return malformed(`A push may update at most ${MAX_COMMANDS} refs through the proxy.`);
    this.#commands.push({ oldId, newId, ref });
    return null;
  }
}

function malformed(message: string): Parsed {
  return { error: "malformed", message };
}

/** SHA-1 or SHA-256, lower-case hex as git writes it. */
function isObjectId(s: string): boolean {
  return (s.length === 40 || s.length === 64) && /^[0-9a-f]+$/.test(s);
}

function hexLength(data: Uint8Array, at: number): number | null {
  let n = 0;
  for (let i = at; i < at + 4; i++) {
    const c = data[i]!;
    const v = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (v < 0) return null;
    n = n * 16 + v;
  }
  return n;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  if (b.byteLength === 0) return a;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/**
 * The chunks already read, then the rest of `source`. The rest is piped natively: in workerd
 * an `IdentityTransformStream` fed by `pipeTo` moves the pack from socket to socket without
 * handing a chunk to JavaScript, so a 50 MiB pack costs no JS heap (elsewhere a plain
 * `TransformStream` does the same job). Cancelling the result cancels `source`.
 */
function replay(chunks: Uint8Array[], source: ReadableStream<Uint8Array>, reader: ReadableStreamDefaultReader<Uint8Array>): ReadableStream<Uint8Array> {
  reader.releaseLock();
  const Identity = (globalThis as { IdentityTransformStream?: typeof TransformStream }).IdentityTransformStream ?? TransformStream;
  const { readable, writable } = new Identity<Uint8Array, Uint8Array>();
  void (async () => {
    const writer = writable.getWriter();
    try {
      for (const chunk of chunks.splice(0)) await writer.write(chunk);
      writer.releaseLock();
    } catch (err) {
      await source.cancel(err).catch(() => undefined);
      return;
    }
    // pipeTo cancels `source` when the consumer cancels, and errors the consumer when `source` fails.
    await source.pipeTo(writable).catch(() => undefined);
  })();
  return readable;
}

// ---------------------------------------------------------------- the refusal

/** One pkt-line: 4 hex digits of length, then the payload. */
export function pktLine(payload: string | Uint8Array): Uint8Array {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  if (bytes.byteLength + 4 > MAX_PKT) throw new RangeError("pkt-line too long");
  const out = new Uint8Array(bytes.byteLength + 4);
  out.set(new TextEncoder().encode((bytes.byteLength + 4).toString(16).padStart(4, "0")));
  out.set(bytes, 4);
  return out;
}

const FLUSH = new TextEncoder().encode("0000");

/**
 * git's `report-status` (v1 and v2 read the same for a refusal): `unpack ok`, one
 * `ng <ref> <reason>` per command, a flush. With `side-band-64k` (or `side-band`) among the
 * capabilities, that report travels in band 1, split to fit the band's packet size, and
 * `notice` goes first in band 2, which git prints as `remote: <notice>`.
 */
export function reportStatus(capabilities: readonly string[], refusals: readonly { ref: string; text: string }[], notice?: string): Uint8Array {
  const lines: Uint8Array[] = [pktLine("unpack ok\n")];
  for (const r of refusals) lines.push(pktLine(`ng ${r.ref} ${r.text.replace(/[\r\n]/g, " ")}\n`));
  lines.push(FLUSH);
  const report = concatBytes(lines);
  const band = capabilities.includes("side-band-64k") ? 65515 : capabilities.includes("side-band") ? 995 : 0;
  if (band === 0) return report;
  const out: Uint8Array[] = [];
  if (notice) out.push(pktLine(concatBytes([new Uint8Array([2]), new TextEncoder().encode(`${notice}\n`)])));
  for (let at = 0; at < report.byteLength; at += band) {
    out.push(pktLine(concatBytes([new Uint8Array([1]), report.subarray(at, at + band)])));
  }
  out.push(FLUSH);
  return concatBytes(out);
}

/** Whether the client asked for a report it can print (`report-status` or `report-status-v2`). */
export function wantsReport(capabilities: readonly string[]): boolean {
  return capabilities.includes("report-status") || capabilities.includes("report-status-v2");
}

/** The bytes of `parts`, one after another. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
