// The REST API as the console uses it: JSON over fetch with the session cookie (a fetch
// from this page sends a same-origin Origin, which the API requires of changes), and the
// job event stream (Server-Sent Events) for live progress.

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.hint = e.hint || "";
    this.code = e.code || "";
  }
}

export async function api(path, { method = "GET", body, query } = {}) {
  let url = "/api/v1" + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    }
    if ([...q].length) url += "?" + q;
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (r.status === 401) {
    location.replace("/login");
    throw new ApiError(401, { error: { message: "the console session ended; log in again" } });
  }
  let data = null;
  if (r.status !== 204) {
    try { data = await r.json(); } catch (_) { data = null; }
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

let features = null;

// Which optional APIs this server has (they land on other branches): read once from the
// OpenAPI document, so a missing one is never called and its controls are not shown.
export async function hasFeature(name) {
  if (features === null) {
    features = api("/openapi.json").then(doc => new Set(Object.keys(doc.paths || {})))
      .catch(() => new Set());
  }
  const paths = await features;
  const wanted = {
    policies: /^\/api\/v1\/policies$/,
    cancel: /^\/api\/v1\/jobs\/\{[^}]+\}\/cancel$/,  // whatever its parameter is called
    migrations: /^\/api\/v1\/migrations$/,
    evacuations: /^\/api\/v1\/evacuations$/,
  }[name];
  return [...paths].some(p => wanted.test(p));
}

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

// Follow a job's progress: onProgress(snapshot) for each pushed snapshot, onEnd(job) once
// with the finished job. Returns a function that stops following. If the stream breaks,
// the job is polled instead (same callbacks).
export function followJob(jobId, { onProgress, onEnd }) {
  let stopped = false;
  let source = null;
  let timer = null;
  const end = job => { if (!stopped) { stop(); onEnd && onEnd(job); } };
  const poll = async () => {
    if (stopped) return;
    try {
      const job = await api(`/jobs/${encodeURIComponent(jobId)}`);
      onProgress && onProgress(job.progress || {});
      if (FINISHED.has(job.state)) { end(job); return; }
    } catch (_) { /* keep trying */ }
    timer = setTimeout(poll, 1000);
  };
  const stop = () => {
    stopped = true;
    if (source) source.close();
    if (timer) clearTimeout(timer);
  };
  if (typeof EventSource === "undefined") {
    poll();
    return stop;
  }
  source = new EventSource(`/api/v1/jobs/${encodeURIComponent(jobId)}/events?interval=0.5`);
  source.addEventListener("progress", ev => {
    if (!stopped) onProgress && onProgress(JSON.parse(ev.data));
  });
  source.addEventListener("end", ev => end(JSON.parse(ev.data)));
  source.onerror = () => {
    if (stopped) return;
    source.close();
    source = null;
    poll();
  };
  return stop;
}
