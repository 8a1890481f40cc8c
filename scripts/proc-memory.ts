/**
 * Memory of the workerd process that Miniflare runs the broker in, read from Linux's /proc:
 * Miniflare starts `workerd` as a child of this Node process (through no shell), so it is
 * the descendant whose `comm` is `workerd`. `VmHWM` is its peak resident set since the last
 * reset; writing `5` to `/proc/<pid>/clear_refs` resets it (Linux 4.0+, own processes), so a
 * phase's peak can be read on its own. Where /proc is missing (not Linux), nothing is measured.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

/** The pid of the workerd process under this one, or `null`. */
export function findWorkerd(root = process.pid): number | null {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return null;
  }
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
      const close = stat.lastIndexOf(")");
      comm.set(Number(e), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(e), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {
      // the process ended while we looked
    }
  }
  const descends = (pid: number): boolean => {
    for (let p = parent.get(pid), hops = 0; p !== undefined && p > 1 && hops < 16; p = parent.get(p), hops++) if (p === root) return true;
    return false;
  };
  const found = [...comm].filter(([pid, name]) => name === "workerd" && descends(pid)).map(([pid]) => pid);
  return found.length > 0 ? Math.max(...found) : null;
}

function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/** Resident set now, in MiB. */
export function rssMiB(pid: number): number {
  return statusKiB(pid, "VmRSS") / 1024;
}

/**
 * Runs `fn` and reports the process's peak resident set during it (MiB): `VmHWM` after a
 * reset where the kernel allows it, else the highest of samples taken every 10 ms.
 */
export async function peakDuring<T>(pid: number, fn: () => Promise<T>): Promise<{ result: T; peakMiB: number; startMiB: number; method: string }> {
  let method = "VmHWM";
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    method = "sampled VmRSS";
  }
  const startMiB = rssMiB(pid);
  let sampled = startMiB;
  const timer = setInterval(() => {
    try {
      sampled = Math.max(sampled, rssMiB(pid));
    } catch {
      // gone
    }
  }, 10);
  try {
    const result = await fn();
    sampled = Math.max(sampled, rssMiB(pid));
    const peakMiB = method === "VmHWM" ? Math.max(statusKiB(pid, "VmHWM") / 1024, sampled) : sampled;
    return { result, peakMiB, startMiB, method };
  } finally {
    clearInterval(timer);
  }
}
