/**
 * CPU time of a process, read from Linux's /proc: the sum over its threads of the
 * scheduler's run time (`/proc/<pid>/task/<tid>/schedstat`, first field, nanoseconds), so it
 * is exact to the nanosecond where clock ticks (`stat`'s utime, 10 ms) would be far too
 * coarse for a few thousand short requests. Threads that ended between two readings take
 * their time with them; workerd keeps its threads, so the difference is the work done.
 */
import { readdirSync, readFileSync } from "node:fs";

/** The process's CPU time so far in nanoseconds, or `NaN` where /proc cannot say. */
export function cpuNs(pid: number): number {
  let total = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended while we looked
      }
    }
  } catch {
    return NaN;
  }
  return total;
}
