#!/usr/bin/env node
/**
 * Checks that the code's seams hold, as CI runs it:
 * - no import cycle among the modules of src/ (a request's data flows one way);
 * - no branch on a provider (`.provider ===`, `.provider !==`, `provider.kind`) outside src/providers/.
 * Prints each violation and exits 1 when there is one.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve("src");
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (/\.ts$/.test(name) && !name.endsWith(".d.ts")) files.push(path);
  }
})(root);

const graph = new Map();
const problems = [];
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const deps = [];
  // Type-only imports carry no runtime edge, but they still tie modules together: count them too.
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)) {
    let target = resolve(dirname(file), m[1]);
    for (const candidate of [target, `${target}.ts`, join(target, "index.ts")]) {
      try {
        if (statSync(candidate).isFile()) {
          target = candidate;
          break;
        }
      } catch {}
    }
    if (target.startsWith(root)) deps.push(target);
  }
  graph.set(file, deps);
  if (!file.startsWith(join(root, "providers"))) {
    text.split("\n").forEach((line, i) => {
      if (/\.provider\s*[!=]==|provider\.kind\s*[!=]==|\bprovider === "(github|gitlab)"/.test(line)) problems.push(`provider branch outside src/providers/: ${relative(".", file)}:${i + 1}: ${line.trim()}`);
    });
  }
}

// Cycles: depth-first search, each cycle reported once by its set of files.
const seen = new Set();
const state = new Map();
const stack = [];
function visit(node) {
  state.set(node, 1);
  stack.push(node);
  for (const next of graph.get(node) ?? []) {
    if (state.get(next) === 1) {
      const cycle = stack.slice(stack.indexOf(next)).map((f) => relative(".", f));
      const key = [...cycle].sort().join(" ");
      if (!seen.has(key)) {
        seen.add(key);
        problems.push(`import cycle: ${[...cycle, relative(".", next)].join(" -> ")}`);
      }
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(node, 2);
}
for (const file of files) if (!state.has(file)) visit(file);

for (const p of problems) console.log(p);
console.log(`seams: ${files.length} modules, ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
