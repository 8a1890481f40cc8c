/**
 * REST v3 for Actions, checks and statuses on the GitHub emulator, what `gh run list`,
 * `gh run view --log-failed` and `gh pr checks`/`gh api` read:
 *
 * - `GET /repos/{o}/{r}/actions/runs` (`?branch=`, `?status=`, `?event=`, `?head_sha=`,
 *   paged), `/actions/workflows/{id}/runs`, `/actions/runs/{id}`, `/actions/runs/{id}/jobs`,
 *   `/actions/runs/{id}/artifacts`, `/actions/jobs/{id}`, `/actions/workflows[/{id}]`,
 *   `/check-runs/{id}/annotations`.
 * - Logs the way GitHub serves them: `/actions/runs/{id}/logs` answers 302 to a ZIP
 *   (`<job>/<n>_<step>.txt`), `/actions/jobs/{id}/logs` 302 to the job's text; the targets
 *   (`/actions-logs/<key>`) need no token, as GitHub's signed blob URLs need none.
 * - `GET /commits/{ref}/check-runs`, `GET /commits/{ref}/status`, `POST /statuses/{sha}`.
 */
import type { RestContext } from "./github-rest.ts";
import { checksOn } from "./github-views.ts";
import type { JobRecord, WorkflowRunRecord } from "./github-store.ts";
import { zip } from "./zip.ts";

/** Serves the routes above under `/repos/{o}/{r}/`; `null` when `rest` is not one of them. */
export async function actionsRoute(ctx: RestContext, rest: string, url: URL): Promise<Response | null> {
  const { host, request, full } = ctx;
  const method = request.method;
  const repo = full.toLowerCase();
  const runs = host.store.runs.filter((r) => r.repo === repo);
  const runById = (id: string) => runs.find((r) => String(r.id) === id);
  const jobById = (id: string) => runs.flatMap((r) => r.jobs.map((job) => ({ run: r, job }))).find((x) => String(x.job.id) === id);
  const notFound = () => host.json(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest/actions" });
  let m: RegExpExecArray | null;

  if (method === "GET" && (rest === "actions/runs" || (m = /^actions\/workflows\/(\d+)\/runs$/.exec(rest)))) {
    const workflow = rest === "actions/runs" ? null : Number(/(\d+)/.exec(rest)![1]);
    const q = url.searchParams;
    const matching = runs
      .filter(
        (r) =>
          (workflow === null || r.workflowId === workflow) &&
          (!q.get("branch") || r.headBranch === q.get("branch")) &&
          (!q.get("event") || r.event === q.get("event")) &&
          (!q.get("head_sha") || r.headSha === q.get("head_sha")) &&
          (!q.get("actor") || r.actor.login === q.get("actor")) &&
          (!q.get("status") || r.status === q.get("status") || r.conclusion === q.get("status")),
      )
      .reverse();
    const { page, link } = paged(ctx, url, matching);
    return host.json(200, { total_count: matching.length, workflow_runs: page.map((r) => runJson(ctx, r)) }, link);
  }
  if (method === "GET" && rest === "actions/workflows") {
    const workflows = [...new Map(runs.map((r) => [r.workflowId, r])).values()];
    return host.json(200, { total_count: workflows.length, workflows: workflows.map((r) => workflowJson(ctx, r)) });
  }
  if (method === "GET" && (m = /^actions\/workflows\/(\d+)$/.exec(rest))) {
    const run = runs.find((r) => String(r.workflowId) === m![1]);
    return run ? host.json(200, workflowJson(ctx, run)) : notFound();
  }
  if (method === "GET" && (m = /^actions\/runs\/(\d+)(\/jobs|\/logs|\/artifacts)?$/.exec(rest))) {
    const run = runById(m[1]!);
    if (!run) return notFound();
    if (m[2] === "/jobs") return host.json(200, { total_count: run.jobs.length, jobs: run.jobs.map((j) => jobJson(ctx, run, j)) });
    if (m[2] === "/artifacts") return host.json(200, { total_count: 0, artifacts: [] });
    if (m[2] === "/logs") return redirect(ctx, `/actions-logs/${run.logKey}`);
    return host.json(200, runJson(ctx, run));
  }
  if (method === "GET" && (m = /^actions\/jobs\/(\d+)(\/logs)?$/.exec(rest))) {
    const found = jobById(m[1]!);
    if (!found) return notFound();
    return m[2] ? redirect(ctx, `/actions-logs/${found.job.logKey}`) : host.json(200, jobJson(ctx, found.run, found.job));
  }
  if (method === "GET" && /^check-runs\/\d+\/annotations$/.test(rest)) return host.json(200, []);

  if (method === "GET" && (m = /^commits\/(.+)\/(check-runs|status)$/.exec(rest))) {
    const ref = decodeURIComponent(m[1]!);
    const oid = (await host.refs?.branches(repo))?.get(ref.replace(/^refs\/heads\//, "")) ?? ref;
    const found = await checksOn(host.store, host.refs, repo, oid);
    if (m[2] === "check-runs") {
      const all = [
        ...found.runs.map((c) => ({ id: c.id, node_id: c.nodeId, name: c.name, head_sha: oid, status: c.status, conclusion: c.conclusion, started_at: c.startedAt, completed_at: c.completedAt, details_url: c.detailsUrl, html_url: c.detailsUrl, output: { ...c.output, annotations_count: 0 }, app: null })),
        ...found.jobs.map(({ run, job }) => ({ ...checkOfJob(ctx, run, job), head_sha: oid })),
      ];
      return host.json(200, { total_count: all.length, check_runs: all });
    }
    const statuses = found.statuses.map((s) => ({ id: s.id, node_id: s.nodeId, state: s.state, context: s.context, description: s.description, target_url: s.targetUrl, created_at: s.createdAt, updated_at: s.createdAt }));
    const states = statuses.map((s) => s.state);
    const state = states.some((s) => s === "failure" || s === "error") ? "failure" : states.includes("pending") || states.length === 0 ? "pending" : "success";
    return host.json(200, { state, sha: oid, total_count: statuses.length, statuses, repository: { full_name: full } });
  }
  if (method === "POST" && (m = /^statuses\/([0-9a-f]{7,40})$/.exec(rest))) {
    if (ctx.caller.permission(full) !== "push") return host.json(403, { message: "Resource not accessible by integration" });
    const body = (await request.json().catch(() => null)) as { state?: string; context?: string; description?: string; target_url?: string } | null;
    if (!body || !["error", "failure", "pending", "success"].includes(String(body.state))) return host.json(422, { message: "Validation Failed" });
    const s = host.store.addStatus(full, { sha: m[1]!, state: body.state as "success", context: body.context, description: body.description, targetUrl: body.target_url });
    return host.json(201, { id: s.id, node_id: s.nodeId, state: s.state, context: s.context, description: s.description, target_url: s.targetUrl, created_at: s.createdAt, creator: { login: ctx.caller.login, id: ctx.caller.id, type: ctx.caller.type } });
  }
  return null;
}

/**
 * `GET /actions-logs/<key>`: a run's logs (ZIP) or a job's (text), without a token, as
 * GitHub's redirect targets are. `null` when no log has that key.
 */
export function serveLog(ctx: Pick<RestContext, "host">, key: string): Response | null {
  for (const run of ctx.host.store.runs) {
    if (run.logKey === key) {
      const files: Record<string, string> = {};
      for (const job of run.jobs) for (const step of job.steps) files[`${job.name}/${step.number}_${step.name.replace(/[/\\:*?"<>|]/g, "")}.txt`] = step.log;
      return new Response(zip(files), { headers: { "content-type": "application/zip", "content-disposition": `attachment; filename=logs_${run.id}.zip` } });
    }
    const job = run.jobs.find((j) => j.logKey === key);
    if (job) return new Response(jobLog(job), { headers: { "content-type": "text/plain; charset=utf-8" } });
  }
  return null;
}

function jobLog(job: JobRecord): string {
  return job.steps.map((s) => `##[group]${s.name}\n${s.log}${s.log.endsWith("\n") || !s.log ? "" : "\n"}##[endgroup]\n`).join("");
}

function redirect(ctx: RestContext, path: string): Response {
  return new Response(null, { status: 302, headers: { location: `${ctx.host.logsOrigin() ?? ctx.web}${path}` } });
}

/** One page (`per_page`, `page`) and GitHub's `Link` header for the next. */
function paged<T>(ctx: RestContext, url: URL, items: T[]): { page: T[]; link: Record<string, string> } {
  const per = Math.min(Math.max(Number(url.searchParams.get("per_page") ?? 30) || 30, 1), 100);
  const page = Math.max(Number(url.searchParams.get("page") ?? 1) || 1, 1);
  const slice = items.slice((page - 1) * per, page * per);
  if (page * per >= items.length) return { page: slice, link: {} };
  const next = new URL(`${ctx.api}${url.pathname}${url.search}`);
  next.searchParams.set("page", String(page + 1));
  return { page: slice, link: { link: `<${next}>; rel="next"` } };
}

function runJson(ctx: RestContext, r: WorkflowRunRecord): Record<string, unknown> {
  const [owner, name] = ctx.full.split("/");
  const base = `${ctx.api}/repos/${ctx.full}/actions/runs/${r.id}`;
  return {
    id: r.id,
    node_id: r.nodeId,
    name: r.workflowName,
    display_title: r.displayTitle,
    path: r.workflowPath,
    head_branch: r.headBranch,
    head_sha: r.headSha,
    run_number: r.runNumber,
    run_attempt: 1,
    event: r.event,
    status: r.status,
    conclusion: r.conclusion,
    workflow_id: r.workflowId,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    run_started_at: r.createdAt,
    url: base,
    html_url: `${ctx.web}/${ctx.full}/actions/runs/${r.id}`,
    jobs_url: `${base}/jobs`,
    logs_url: `${base}/logs`,
    artifacts_url: `${base}/artifacts`,
    workflow_url: `${ctx.api}/repos/${ctx.full}/actions/workflows/${r.workflowId}`,
    actor: { login: r.actor.login, id: r.actor.id, type: r.actor.type },
    triggering_actor: { login: r.actor.login, id: r.actor.id, type: r.actor.type },
    head_commit: { id: r.headSha, message: r.displayTitle },
    repository: { name, full_name: ctx.full, owner: { login: owner } },
    head_repository: { name, full_name: ctx.full, owner: { login: owner } },
    pull_requests: [],
  };
}

function workflowJson(ctx: RestContext, r: WorkflowRunRecord): Record<string, unknown> {
  return {
    id: r.workflowId,
    node_id: `W_kwDO${btoa(String(r.workflowId)).replace(/=+$/, "")}`,
    name: r.workflowName,
    path: r.workflowPath,
    state: "active",
    url: `${ctx.api}/repos/${ctx.full}/actions/workflows/${r.workflowId}`,
    html_url: `${ctx.web}/${ctx.full}/blob/main/${r.workflowPath}`,
  };
}

function jobJson(ctx: RestContext, run: WorkflowRunRecord, j: JobRecord): Record<string, unknown> {
  return {
    id: j.id,
    run_id: run.id,
    node_id: j.nodeId,
    name: j.name,
    workflow_name: run.workflowName,
    head_branch: run.headBranch,
    head_sha: run.headSha,
    status: j.status,
    conclusion: j.conclusion,
    started_at: j.startedAt,
    completed_at: j.completedAt,
    url: `${ctx.api}/repos/${ctx.full}/actions/jobs/${j.id}`,
    html_url: `${ctx.web}/${ctx.full}/actions/runs/${run.id}/job/${j.id}`,
    run_url: `${ctx.api}/repos/${ctx.full}/actions/runs/${run.id}`,
    check_run_url: `${ctx.api}/repos/${ctx.full}/check-runs/${j.id}`,
    steps: j.steps.map((s) => ({ name: s.name, number: s.number, status: s.status, conclusion: s.conclusion, started_at: j.startedAt, completed_at: j.completedAt })),
  };
}

function checkOfJob(ctx: RestContext, run: WorkflowRunRecord, j: JobRecord): Record<string, unknown> {
  const html = `${ctx.web}/${ctx.full}/actions/runs/${run.id}/job/${j.id}`;
  return { id: j.id, node_id: j.nodeId, name: j.name, status: j.status, conclusion: j.conclusion, started_at: j.startedAt, completed_at: j.completedAt, details_url: html, html_url: html, output: { title: null, summary: null, text: null, annotations_count: 0 }, app: { slug: "github-actions", name: "GitHub Actions" } };
}
