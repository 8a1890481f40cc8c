/**
 * Records what `gh` sends (one JSON line per request: method, url, body) and answers GraphQL
 * from GitHub's schema with made-up values, so `gh` carries on to its next request.
 * Used to record test/fixtures/gh (see its README).
 *
 * Usage: node scripts/gh-capture-server.mjs <repo root> <log.jsonl> <port> [overrides.json] [key.pem] [cert.pem]
 */
import { createServer } from "node:https";
import { readFileSync, appendFileSync, existsSync } from "node:fs";
import { buildSchema, parse, execute, isObjectType, isAbstractType, getNamedType, isListType, isNonNullType, isEnumType, isScalarType } from "graphql";
const root = process.argv[2];
const log = process.argv[3];
// Per-field answers for one run (e.g. {"isDraft": true}), read on every request.
const overridesFile = process.argv[5] ?? "/dev/null/none";
const schema = buildSchema(readFileSync(`${root}/node_modules/@octokit/graphql-schema/schema.graphql`, "utf8"), { assumeValidSDL: true });
function scalar(t, name) {
  switch (t.name) {
    case "Int": return name === "number" ? 7 : 1;
    case "Float": return 1.0;
    case "Boolean": return name === "viewerCanMerge" || name==="viewerCanUpdate"? true : false;
    case "ID": return "ID_" + name;
    case "DateTime": return "2024-01-01T00:00:00Z";
    case "URI": return "https://127.0.0.1/o/r";
    case "GitObjectID": return "0123456789abcdef0123456789abcdef01234567";
    default: return name === "nameWithOwner" ? "o/r" : name === "login" ? "octo" : name === "name" ? "r" : name.endsWith("RefName") ? "main" : "x";
  }
}
function value(type, name, depth) {
  if (isNonNullType(type)) return value(type.ofType, name, depth);
  if (isListType(type)) return depth > 8 ? [] : [value(type.ofType, name, depth + 1)];
  if (isEnumType(type)) { const vs = type.getValues(); const pick = vs.find(v => ["OPEN","ADMIN","SUCCESS","MERGE","COMPLETED","PUBLIC","MERGEABLE","CLEAN"].includes(v.name)); return (pick ?? vs[0]).value; }
  if (isScalarType(type)) return scalar(type, name);
  return { __depth: depth };
}
const fieldResolver = (src, args, ctx, info) => {
  if (src && Object.prototype.hasOwnProperty.call(src, info.fieldName)) return src[info.fieldName];
  if (Object.prototype.hasOwnProperty.call(ctx, info.fieldName)) return ctx[info.fieldName];
  return value(info.returnType, info.fieldName, (src?.__depth ?? 0) + 1);
};
const typeResolver = (v, ctx, info, abstract) => {
  const names = schema.getPossibleTypes(abstract).map(t => t.name);
  for (const pref of ["PullRequest","User","Issue","IssueComment","CheckRun","StatusContext","Commit"]) if (names.includes(pref)) return pref;
  return names[0];
};
const n = { i: 0 };
createServer({ key: readFileSync(process.argv[6] ?? "/tmp/ghcap/key.pem"), cert: readFileSync(process.argv[7] ?? "/tmp/ghcap/cert.pem") }, (req, res) => {
  let body = "";
  req.on("data", c => body += c);
  req.on("end", () => {
    const rec = { i: n.i++, method: req.method, url: req.url, body };
    appendFileSync(log, JSON.stringify(rec) + "\n");
    res.setHeader("content-type", "application/json");
    res.setHeader("x-oauth-scopes", "repo, read:org, workflow");
    if (req.url === "/api/graphql") {
      const b = JSON.parse(body);
      let out;
      try {
        const overrides = existsSync(overridesFile) ? JSON.parse(readFileSync(overridesFile, "utf8")) : {};
        out = execute({ schema, document: parse(b.query), variableValues: b.variables, operationName: b.operationName, fieldResolver, typeResolver, rootValue: {}, contextValue: overrides });
      } catch (e) { out = { errors: [{ message: String(e) }] }; }
      res.end(JSON.stringify(out));
      return;
    }
    if (req.url.startsWith("/api/v3/user")) { res.end(JSON.stringify({ login: "octo", id: 1 })); return; }
    res.end(JSON.stringify({}));
  });
}).listen(Number(process.argv[4] ?? 8443), "127.0.0.1", () => console.log("listening"));
