// Migrations: the list (state, source → destination, downtime, verify outcome), one
// migration's page, and what the wizard shares with it: the checks with their hints, the
// phases followed live (the migration polled, its running child job's event stream for
// the bar), Cancel while it runs, Rollback after a success, and the report.

import { api, followJob } from "./api.js";
import { errorCell, heading, jobHref, volHref } from "./live.js";
import { badge, bytes, dialog, duration, errorBox, fill, h, link, mark, parseTime, progressView,
  table, timeEl, toast, when } from "./ui.js";

export const ACTIVE = new Set(["queued", "running"]);
export const migHref = id => `#/migrations/${encodeURIComponent(id)}`;
export const mdHref = id => `/api/v1/migrations/${encodeURIComponent(id)}/report?format=md`;
const PHASES = ["validate", "pre-copy", "catch-up", "cut-over", "verify", "finish"];
const POLL_MS = 1000;

const endpoint = e => `${e.host}/${e.volume}`;
export const route = m => `${endpoint(m.source)} → ${endpoint(m.destination)}`
  + (m.destination.driver !== "local" || Object.keys(m.destination.driver_opts).length
    ? ` (${driverText(m.destination)})` : "");
export const driverText = d => [d.driver, ...Object.entries(d.driver_opts || {})
  .sort().map(([k, v]) => `${k}=${v}`)].join(", ");
const state = s => badge(s === "rolled_back" ? "rolled back" : s);
const secs = x => (x === null || x === undefined ? "—" : x < 60 ? `${x.toFixed(2)} s` : duration(x));
const verifyBadge = v => (v ? h("span", { class: "badge " + (v === "passed" ? "ok" : "bad") }, v) : "—");
const took = (a, b) => (a && b ? duration((parseTime(b) - parseTime(a)) / 1000) : "—");

// The checks of a dry run or of a migration's validation, each with its hint (a check's
// detail says what to do after " — ").
export function checkList(checks) {
  return h("ul", { class: "checks", "aria-label": "Checks" }, checks.map(c => {
    const [detail, ...hint] = String(c.detail).split(" — ");
    return h("li", { class: c.ok ? "ok" : "bad", "data-check": c.name },
      h("span", { "aria-hidden": "true" }, c.ok ? "✓ " : "✗ "), h("strong", {}, c.name), ": ", detail,
      h("span", { class: "sr-only" }, c.ok ? " (passed)" : " (failed)"),
      hint.length ? h("small", { class: "hint" }, h("strong", {}, " What to do: "), hint.join(" — ")) : null);
  }));
}

export async function migrations(main, _params, ctx) {
  const out = h("div", {});
  fill(main, heading("Migrations"), h("p", { class: "muted" },
    "Volumes moved to another host, name or driver. Start one from a volume's page (Migrate…)."),
  ctx.can("operator") ? h("div", { class: "page-actions" }, link("#/migrate", "New migration…", { class: "button" })) : null,
  out);
  let timer = null;
  const load = async () => {
    const rows = await api("/migrations", { query: { limit: 200 } });
    fill(out, table([
      ["migration", m => link(migHref(m.id), m.id)],
      ["state", m => state(m.state)],
      ["source → destination", route],
      ["downtime", m => (m.cutover === "none" ? "none (no stop)" : secs(m.downtime_seconds))],
      ["verify", m => verifyBadge(m.verify_outcome)],
      ["by", m => m.requested_by || "", { class: "wide" }],
      ["created", m => timeEl(m.created_at)],
      ["reason", m => (m.reason ? errorCell({ error: m.reason }) : "")],
    ], rows, { empty: "no migrations yet", rowAttrs: m => ({ "data-migration": m.id, "data-state": m.state }) }));
    if (rows.some(m => ACTIVE.has(m.state))) timer = setTimeout(() => load().catch(() => {}), 2 * POLL_MS);
  };
  await load();
  mark("migrations");
  return () => clearTimeout(timer);
}

// One migration followed until it ends: its phases, the running child job's bar, Cancel
// while it runs; then the report (with Rollback after a success). Returns a stop function.
export function followMigration(box, id, ctx, { onEnd } = {}) {
  const view = progressView("migration progress");
  const phasesBox = h("div", { "aria-live": "polite" });
  const actions = h("div", { class: "actions" });
  const report = h("div", {});
  let stopped = false;
  let timer = null;
  let following = null;  // [job id, stop]
  fill(box, phasesBox, view.el, actions, report);
  const follow = job => {
    if (following && following[0] === (job && job.job_id)) return;
    if (following) following[1]();
    following = null;
    if (!job) { view.el.hidden = true; return; }
    view.el.hidden = false;
    view.set(job.progress, "running");
    following = [job.job_id, followJob(job.job_id, {
      onProgress: p => view.set({ ...p, phase: `${job.step}: ${p.phase || job.kind}` }, "running"),
    })];
  };
  const draw = m => {
    // live: the phases as they run; at the end the report (which holds them) instead
    fill(phasesBox, ACTIVE.has(m.state) ? phasesTable(m, true) : null);
    const running = m.phases.flatMap(p => p.jobs).find(j => ACTIVE.has(j.state));
    follow(ACTIVE.has(m.state) ? running : null);
    fill(actions, ACTIVE.has(m.state) && ctx.can("operator") && !m.cancel_requested_by
      && !m.rollback_requested_by
      ? h("button", { type: "button", class: "danger", onclick: async ev => {
        const button = ev.currentTarget;
        if (!await confirmMigrationCancel(m)) return;
        button.disabled = true;
        try {
          await api(`/migrations/${encodeURIComponent(id)}/cancel`, { method: "POST" });
          toast(`Cancel of migration ${id} requested: it rolls back`);
        } catch (e) { button.disabled = false; toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true); }
      } }, "Cancel migration") : null);
    if (!ACTIVE.has(m.state)) fill(report, reportView(m, ctx, () => poll()));
    else fill(report);
  };
  const poll = async () => {
    clearTimeout(timer);
    if (stopped) return;
    let m;
    try {
      m = await api(`/migrations/${encodeURIComponent(id)}`);
    } catch (e) {
      fill(actions, errorBox(e, { title: "Could not read the migration" }));
      timer = setTimeout(poll, 2 * POLL_MS);
      return;
    }
    if (stopped) return;
    draw(m);
    box.dataset.state = m.state;
    if (ACTIVE.has(m.state)) timer = setTimeout(poll, POLL_MS);
    else if (onEnd) onEnd(m);
  };
  poll();
  return () => { stopped = true; clearTimeout(timer); if (following) following[1](); };
}

// Before a migration is cancelled: its current step stops and it rolls back.
async function confirmMigrationCancel(m) {
  const answer = await dialog(`Cancel migration ${m.id}?`,
    h("p", {}, `Its current step is stopped and the migration rolls back: the destination ${endpoint(m.destination)} is removed, the source ${endpoint(m.source)} is kept and its stopped containers are started again. It ends cancelled.`),
    [["Keep it", ""], ["Cancel migration", "cancel", "danger"]]);
  return answer === "cancel";
}

function phasesTable(m, live) {
  const seen = new Map(m.phases.map(p => [p.name, p]));
  // the catch-up (rounds of the running source copied again) only where it ran: the
  // report's catchup.ended says why not otherwise
  const names = [...PHASES.filter(p => (p !== "finish" || m.remove_source || seen.has(p))
    && (p !== "catch-up" || seen.has(p))),
    ...(seen.has("rollback") ? ["rollback"] : [])];
  const rows = names.map(n => seen.get(n) || { name: n, state: ACTIVE.has(m.state) ? "waiting" : "skipped", jobs: [] });
  return table([
    ["phase", p => p.name],
    ["state", p => badge(p.state)],
    ["took", p => (p.state === "running" ? (live ? "…" : "—") : took(p.started_at, p.finished_at))],
    ["bytes", p => (p.bytes ? bytes(p.bytes) : "—")],
    ["jobs", p => p.jobs.map((j, i) => [i ? ", " : "", link(jobHref({ id: j.job_id }), j.step), ` (${j.state})`])],
  ], rows, { caption: "Phases", rowAttrs: p => ({ "data-phase": p.name, "data-state": p.state }) });
}

// The catch-up rounds: what each carried (or that it found nothing), then why no more ran.
const catchupText = c => [...(c.rounds || []).map(x => `round ${x.round}: ${bytes(x.bytes_read || 0)} read, `
  + (x.apply ? `applied (${x.apply.files_written} files)` : "apply skipped")), c.ended]
  .filter(Boolean).join("; ") || "—";

// The report: what moved where, how long the application was down, the verify, the
// phases, the checks, the backups it made, what to do next; the Markdown page linked.
export function reportView(m, ctx, onRollback) {
  const r = m.report || {};
  const ok = m.state === "succeeded";
  const facts = [
    ["state", state(m.state)],
    ["source", link(volHref(m.source.host, m.source.volume), `${m.source.host}/${m.source.volume}`)],
    ["destination", [link(volHref(m.destination.host, m.destination.volume), `${m.destination.host}/${m.destination.volume}`),
      ` (driver ${driverText(m.destination)})`]],
    ["via target", m.via], ["cut-over", m.cutover === "stop" ? "stop the containers using it" : "no stop"],
    ["downtime", m.cutover === "none" ? "none (nothing was stopped)" : secs(m.downtime_seconds)],
    ["verify", m.verify_outcome || "—"],
    ["size", r.source_bytes == null ? "—" : bytes(r.source_bytes)],
    ["requested by", m.requested_by || "—"],
    ["started", when(m.started_at || m.created_at)], ["finished", m.finished_at ? when(m.finished_at) : "—"],
    ["backups", [["pre-copy", r.precopy_backup_id], ["final", r.final_backup_id], ["safety", r.safety_backup_id]]
      .filter(([, b]) => b).map(([k, b]) => h("span", {}, `${k} `, h("code", {}, b), " ")) ],
    ["containers stopped", (r.containers_stopped || []).map(c => c.name || c).join(", ") || "none"],
    ["catch-up", catchupText(r.catchup || {})],
  ];
  const rollbackBox = h("div", { "aria-live": "polite" });
  const rollback = ok && ctx.can("admin")
    ? h("button", { type: "button", class: "danger", onclick: async ev => {
      const button = ev.target;
      const answer = await dialog(`Roll back migration ${m.id}?`, h("p", {},
        `The destination ${endpoint(m.destination)} is removed, with anything written to it since the cut-over; `
        + (r.source_removed ? `${endpoint(m.source)} is restored from its safety backup.` : `the source ${endpoint(m.source)} was kept.`)),
      [["Keep it", ""], ["Roll back", "rollback", "danger"]]);
      if (answer !== "rollback") return;
      button.disabled = true;
      try {
        await api(`/migrations/${encodeURIComponent(m.id)}/rollback`, { method: "POST" });
        toast(`Rollback of migration ${m.id} started`);
        if (onRollback) onRollback();
      } catch (e) { button.disabled = false; fill(rollbackBox, errorBox(e)); }
    } }, "Roll back migration") : null;
  return h("section", { class: "report", "aria-labelledby": "report-h", "data-report": m.id },
    h("h2", { id: "report-h" }, `Report: ${ok ? "migrated" : m.state.replace("_", " ")}`),
    m.reason ? errorBox(m.reason, { title: ok ? "Note" : "Why" }) : null,
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k }, v)])),
    phasesTable(m, false),
    m.next_steps.length ? [h("h3", {}, "Next steps"), h("ul", {}, m.next_steps.map(s => h("li", {}, s)))] : null,
    (r.checks || []).length ? [h("h3", {}, "Checks at the start"), checkList(r.checks)] : null,
    (r.rollback_errors || []).length ? errorBox(r.rollback_errors.join("; "), { title: "Left to do by hand" }) : null,
    h("div", { class: "actions" },
      link(mdHref(m.id), "Report as Markdown", { class: "button", target: "_blank", rel: "noopener" }),
      link(migHref(m.id), "Migration page", { class: "button" }), rollback),
    rollback ? h("p", { class: "muted" }, "Rolling back removes the destination and starts the containers stopped for the cut-over again"
      + (r.source_removed ? "; the source is restored from its safety backup." : "; the source was kept.")) : null,
    rollbackBox);
}

export async function migration(main, [id], ctx) {
  const m = await api(`/migrations/${encodeURIComponent(id)}`);
  const box = h("div", { class: "migration-live" });
  fill(main, heading("Migration ", h("code", {}, m.id)),
    h("p", {}, route(m), " · ", link("#/migrations", "all migrations")), box);
  const stop = followMigration(box, id, ctx);
  mark("migration");
  return stop;
}
