// Jobs: the history with filters and pages, live progress of the running ones (the
// page refreshes itself while any is queued or running), errors with their hints, and
// Cancel offered for queued and running jobs only; one job's page follows its event
// stream.

import { FINISHED, api, followJob, hasFeature } from "./api.js";
import { CANCELLABLE, WIDE, cancelButton, errorCell, heading, jobHref, liveBars, subject,
  volHref, watchActive } from "./live.js";
import { badge, bytes, confirmRollback, duration, errorBox, field, fill, h, link, mark, pager, plainCheck, plural, progressView,
  select, timeEl, toast, when, table } from "./ui.js";

const PAGE = 100;
const KINDS = ["backup", "restore", "verify", "validate", "drill", "forget", "copy", "label",
  "browse", "prune", "repair", "stats", "snapshots", "keys", "unlock"];

function progressCell(j) {
  if (j.state !== "running") return "";
  const view = progressView(`progress of job ${j.id}`);
  view.set(j.progress, j.state);
  return view.el;
}

// opts.cancel: offer Cancel (the role may and the server can); opts.refresh after it;
// opts.bars: live bars kept across redraws (liveBars), else each draw shows the polled
// progress.
export function jobsTable(rows, { cancel = false, refresh, bars } = {}) {
  const cols = [
    ["job", j => link(jobHref(j), j.id)], ["kind", j => j.kind],
    ["volume", j => (j.volume ? link(volHref(j.host, j.volume), subject(j)) : subject(j))],
    ["state", j => badge(j.state)],
    ["progress", bars ? bars.cell : progressCell],
    ["by", j => j.requested_by || "", WIDE], ["created", j => timeEl(j.created_at)],
    ["error", errorCell],
  ];
  if (cancel) cols.push(["", j => (CANCELLABLE.has(j.state) ? cancelButton(j, refresh) : "")]);
  return table(cols, rows, { empty: "no jobs", rowAttrs: j => ({ "data-job": j.id, "data-state": j.state }) });
}

export async function jobs(main, _params, ctx, query) {
  const f = {
    job_state: select([["", "any"], "queued", "running", "succeeded", "failed", "cancelled"], query.get("state") || "", { name: "state" }),
    // browse jobs (the restore wizard's tree listing a backup) only when asked for
    kind: select([["", "any but browse"], ...KINDS], query.get("kind") || "", { name: "kind" }),
    host: h("input", { type: "text", name: "host", value: query.get("host") || "" }),
    volume: h("input", { type: "text", name: "volume", value: query.get("volume") || "" }),
  };
  const cancel = ctx.can("operator") && await hasFeature("cancel");
  const out = h("div", {});
  let active = false;
  const bars = liveBars();
  const pages = pager(PAGE, async (offset, limit) => {
    const q = Object.fromEntries(Object.entries(f).map(([k, el]) => [k, el.value]));
    return api("/jobs", { query: { ...q, limit, offset } });
  }, rows => {
    active = rows.some(j => CANCELLABLE.has(j.state));
    fill(out, jobsTable(rows, { cancel, refresh: () => pages.reload(), bars }));
    bars.keep(rows);
  }, "jobs");
  const load = () => pages.first().catch(e => fill(out, errorBox(e)));
  fill(main, heading("Jobs"),
    h("form", { class: "filters", role: "search", "aria-label": "Filter jobs",
      onsubmit: ev => { ev.preventDefault(); load(); } },
    field("State", f.job_state), field("Kind", f.kind), field("Host", f.host),
    field("Volume", f.volume), h("button", { type: "submit" }, "Filter")), pages.el, out);
  for (const el of [f.job_state, f.kind]) el.addEventListener("change", load);
  await pages.first();
  mark("jobs");
  // live while something runs (every 1.5 s), else a slow refresh, and at once when a job
  // starts or ends; never while a control in the table has the focus (a keyboard user
  // is about to press it)
  let ticks = 0;
  const focused = () => out.contains(document.activeElement) && document.activeElement !== document.body;
  const timer = setInterval(() => {
    ticks += 1;
    if (focused()) return;
    if (active || ticks % 7 === 0) pages.reload().catch(() => {});
  }, 1500);
  const unwatch = watchActive(() => { if (!focused()) pages.reload().catch(() => {}); });
  return () => { clearInterval(timer); unwatch(); bars.stop(); };
}

export function resultView(j) {
  const r = j.result || {};
  if (Array.isArray(r.checks)) {
    return h("ul", { class: "checks" }, r.checks.map(c => h("li", { class: c.ok ? "ok" : "bad" },
      h("span", { "aria-hidden": "true" }, c.ok ? "✓ " : "✗ "), h("strong", {}, c.name), ": ", plainCheck(c.detail),
      h("span", { class: "sr-only" }, c.ok ? " (passed)" : " (failed)"))));
  }
  if (!Object.keys(r).length) return null;
  return [outcome(j.kind, r), h("details", {}, h("summary", {}, "Result"), h("pre", {}, JSON.stringify(r, null, 2)))];
}

const entries = n => `${n} ${n === 1 ? "entry" : "entries"}`;
const secs = s => (s < 10 ? `${Number(s).toFixed(2)} s` : duration(s));
const found = r => (r.problem_count
  ? h("ul", { class: "checks" }, r.problems.map(p => h("li", { class: "bad" }, p)),
    r.problem_count > r.problems.length ? h("li", {}, `… ${r.problem_count - r.problems.length} more`) : null)
  : "no differences");

// What a drill or a verify found, in words (the raw result stays below it).
function outcome(kind, r) {
  const facts = (...pairs) => h("dl", { class: "facts", "data-result": kind },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  if (kind === "drill" && r.passed !== undefined) {
    return facts(["outcome", badge(r.passed ? "passed" : "failed")],
      ["restored", `${bytes(r.bytes_restored)}, ${plural(r.files_restored, "file")} into ${r.scratch_volume} (removed) in ${secs(r.restore_seconds)}, ${bytes(r.throughput_bytes_per_s)}/s`],
      ["compared", `${entries(r.entries_checked)} in ${secs(r.compare_seconds)}`],
      ["found", found(r)]);
  }
  if (kind === "verify" && r.ok !== undefined) {
    const scope = { full: "the whole archive read and checked", "read-data": "all the data read back",
      subset: `${r.subset_percent} % of the data read back`,
      structure: "the structure (snapshot, trees, index); no data read" }[r.scope] || r.scope;
    return facts(["outcome", badge(r.ok ? "ok" : "damaged")], ["scope", scope],
      ["checked", `${entries(r.entries_checked || 0)}${r.bytes_read ? `, ${bytes(r.bytes_read)} read` : ""}`],
      ["found", found(r)]);
  }
  return null;
}

export async function job(main, [id], ctx) {
  let stop = () => {};
  const view = progressView(`progress of job ${id}`);
  const draw = async j => {
    const cancel = CANCELLABLE.has(j.state) && ctx.can("operator") && await hasFeature("cancel")
      ? cancelButton(j) : null;
    const rollback = j.kind === "restore" && j.params.mode === "replace" && j.state === "succeeded"
      && j.result && j.result.safety_backup_id && ctx.can("admin")
      ? h("button", { type: "button", class: "danger", onclick: async () => {
        if (!await confirmRollback(j)) return;
        try {
          const rb = await api(`/restores/${j.id}/rollback`, { method: "POST" });
          location.hash = jobHref(rb);
        } catch (e) { toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true); }
      } }, "Roll back this replace") : null;
    view.set(j.progress, j.state);
    fill(main, heading(`${j.kind} job `, h("code", {}, j.id)),
      h("p", {}, badge(j.state), " ", j.volume ? link(volHref(j.host, j.volume), subject(j)) : subject(j)),
      // a finished drill's last progress is its comparison's: its result says what it restored
      !FINISHED.has(j.state) || (j.state === "succeeded" && j.progress.bytes_total && j.kind !== "drill")
        ? view.el : null,
      j.error ? errorBox(j.error, { title: "The job failed" }) : null,
      h("div", { class: "page-actions" }, cancel, rollback),
      h("dl", { class: "facts" },
        h("dt", {}, "target"), h("dd", {}, j.target || "—"),
        h("dt", {}, "backup"), h("dd", {}, j.backup_id ? h("code", {}, j.backup_id) : "—"),
        h("dt", {}, "requested by"), h("dd", {}, j.requested_by || "—"),
        h("dt", {}, "worker"), h("dd", {}, j.worker || "—"),
        h("dt", {}, "created"), h("dd", {}, when(j.created_at)),
        h("dt", {}, "started"), h("dd", {}, when(j.started_at)),
        h("dt", {}, "finished"), h("dd", {}, j.finished_at ? when(j.finished_at) : "—"),
        h("dt", {}, "parameters"), h("dd", {}, h("code", {}, JSON.stringify(j.params)))),
      resultView(j));
  };
  const j = await api(`/jobs/${encodeURIComponent(id)}`);
  await draw(j);
  mark("job");
  if (!FINISHED.has(j.state)) {
    stop = followJob(id, { onProgress: p => view.set(p, "running"), onEnd: done => draw(done) });
  }
  return () => stop();
}
