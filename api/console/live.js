// What several pages share about jobs: links, the subject of a job, its error with the
// hint, the cancel button (offered for queued and running jobs only) and the list of
// running jobs with live bars.

import { api, followJob } from "./api.js";
import { badge, confirmCancel, h, link, progressView, splitError, toast } from "./ui.js";

export const jobHref = j => `#/jobs/${encodeURIComponent(j.id)}`;
export const volHref = (host, name) => `#/volumes/${encodeURIComponent(host)}/${encodeURIComponent(name)}`;
export const WIDE = { class: "wide" };  // hidden on narrow screens
export const subject = j => (j.volume ? `${j.host}/${j.volume}` : `target ${j.target || "?"} on ${j.host}`);
export const heading = (text, ...rest) => h("h1", { tabindex: -1 }, text, ...rest);

export function jobLine(j) {
  const { message } = splitError(j.error || "");
  return message;
}

// A job's error as a table cell: the message, and the hint as "What to do".
export function errorCell(j) {
  if (!j.error) return "";
  const { message, hint } = splitError(j.error);
  return h("span", { class: "job-error" }, h("span", { class: "bad" }, message),
    hint ? h("small", { class: "hint" }, h("strong", {}, " What to do: "), hint) : null);
}

export const CANCELLABLE = new Set(["queued", "running"]);

// Running jobs with live bars; `box` is refilled on every poll. The first few follow
// their event stream (a browser holds only ~6 connections to one server over HTTP/1.1,
// and the page still needs some for its reads); the others take the progress each poll
// brings.
const MAX_STREAMS = 3;
// A finished job's row stays this long (its bar at 100 %, its outcome) before a refresh
// drops it.
const LINGER_MS = 4000;

export function cancelButton(j, onDone) {
  return h("button", { type: "button", class: "small danger", "aria-label": `Cancel job ${j.id}`,
    onclick: async ev => {
      const button = ev.currentTarget;
      if (!await confirmCancel(j)) return;
      button.disabled = true;
      try {
        await api(`/jobs/${j.id}/cancel`, { method: "POST" });
        toast(`Cancel of job ${j.id} requested`);
        if (onDone) onDone();
      } catch (e) {
        button.disabled = false;
        toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true);
      }
    } }, "Cancel");
}

export function liveJobs(box, canCancel) {
  const followed = new Map();
  const streams = () => [...followed.values()].filter(f => f.stream && !f.done).length;
  const update = jobs => {
    const ids = new Set(jobs.map(j => j.id));
    for (const [id, f] of followed) {
      const gone = f.done ? Date.now() - f.done > LINGER_MS : !f.stream;
      if (!ids.has(id) && gone) { f.stop(); f.row.remove(); followed.delete(id); }
    }
    for (const j of jobs) {
      const known = followed.get(j.id);
      if (known) {
        if (!known.stream) known.view.set(j.progress, j.state);
        continue;
      }
      const view = progressView(`progress of ${j.kind} job ${j.id}`);
      view.set(j.progress, j.state);
      const row = h("li", { class: "live", "data-job": j.id },
        h("div", {}, link(jobHref(j), `${j.kind} ${subject(j)}`), " ", badge(j.state), " ",
          canCancel ? cancelButton(j) : null),
        view.el);
      const entry = { row, view, done: 0, stream: streams() < MAX_STREAMS, stop: () => {} };
      if (entry.stream) {
        entry.stop = followJob(j.id, {
          onProgress: p => view.set(p, "running"),
          onEnd: job => {
            view.set(job.progress, job.state);
            entry.done = Date.now();
            for (const b of row.querySelectorAll("button")) b.remove();
          },
        });
      }
      followed.set(j.id, entry);
      box.append(row);
    }
    const empty = box.querySelector(".empty");
    if (followed.size && empty) empty.remove();
    if (!followed.size && !empty) box.append(h("li", { class: "empty muted" }, "no job is running"));
  };
  const stop = () => { for (const f of followed.values()) f.stop(); };
  return { update, stop };
}

// Progress bars of running jobs kept across a table's redraws (a list polled every few
// seconds): `cell(job)` gives the job's bar, the same element each time; the first few
// follow their event stream (so the bar is as fresh as the job page's), the others show
// what each poll brings. `keep(rows)` drops the bars of jobs no longer listed.
export function liveBars() {
  const bars = new Map();
  const drop = id => { const b = bars.get(id); if (b) { b.stop(); bars.delete(id); } };
  const cell = j => {
    if (!CANCELLABLE.has(j.state)) { drop(j.id); return ""; }
    let b = bars.get(j.id);
    if (!b) {
      const view = progressView(`progress of job ${j.id}`);
      b = { view, stream: false, stop: () => {} };
      if ([...bars.values()].filter(x => x.stream).length < MAX_STREAMS) {
        b.stream = true;
        b.stop = followJob(j.id, {
          onProgress: p => view.set(p, "running"),
          onEnd: job => view.set(job.progress, job.state),
        });
      }
      bars.set(j.id, b);
    }
    b.view.set(j.progress, j.state);  // skipped when the stream already showed newer
    return b.view.el;
  };
  const keep = rows => {
    const ids = new Set(rows.map(j => j.id));
    for (const id of [...bars.keys()]) if (!ids.has(id)) drop(id);
  };
  const stop = () => { for (const id of [...bars.keys()]) drop(id); };
  return { cell, keep, stop };
}

// Notice new and ended jobs soon: the queued and running jobs are read every `everyMs`
// (two small reads) and `onChange(jobs)` is called when their set (ids and states)
// changes, so a list page shows a job that started elsewhere within about a second
// instead of on its next full refresh. Returns a function that stops watching.
export function watchActive(onChange, everyMs = 1000) {
  let seen = null;
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const [running, queued] = await Promise.all([
        api("/jobs", { query: { job_state: "running", limit: 100 } }),
        api("/jobs", { query: { job_state: "queued", limit: 100 } })]);
      const jobs = [...running, ...queued];
      const key = jobs.map(j => `${j.id}:${j.state}`).sort().join(",");
      if (seen !== null && key !== seen) onChange(jobs);
      seen = key;
    } catch (_) { /* the next tick tries again */ } finally { busy = false; }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return () => clearInterval(timer);
}
