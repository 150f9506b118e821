// Evacuations: every volume of a host migrated to another host, a few at a time, with one
// report. The list, one evacuation (its per-volume migrations, refreshed while they run,
// and the Markdown report), and the form that starts one (operators; offered on the
// hosts page): the dry run first, each volume's checks with their hints, then Start.

import { api } from "./api.js";
import { errorCell, heading } from "./live.js";
import { ACTIVE, checkList, migHref } from "./migrations.js";
import { badge, bytes, duration, errorBox, field, fill, h, link, mark, select, table, timeEl, when }
  from "./ui.js";

export const evHref = id => `#/evacuations/${encodeURIComponent(id)}`;
const mdHref = id => `/api/v1/evacuations/${encodeURIComponent(id)}?format=md`;
const secs = x => (x === null || x === undefined ? "—" : x < 60 ? `${x.toFixed(2)} s` : duration(x));
const stateBadge = s => badge(s === "rolled_back" ? "rolled back" : s);
const counts = e => Object.entries(e.counts || {}).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(", ");
const POLL_MS = 2000;

export async function evacuations(main, _params, ctx) {
  const out = h("div", {});
  fill(main, heading("Evacuations"), h("p", { class: "muted" },
    "Every volume of a host moved to another host, a few at a time, with one report."),
  ctx.can("operator") ? h("div", { class: "page-actions" }, link("#/evacuate", "Evacuate a host…", { class: "button" })) : null,
  out);
  let timer = null;
  const load = async () => {
    const rows = await api("/evacuations", { query: { limit: 200 } });
    fill(out, table([
      ["evacuation", e => link(evHref(e.id), e.id)],
      ["state", e => stateBadge(e.state)],
      ["from → to", e => `${e.host} → ${e.to_host}`],
      ["volumes", e => String(e.volumes)],
      ["outcome", counts],
      ["moved", e => bytes(e.bytes)],
      ["longest downtime", e => secs(e.downtime_max_seconds), { class: "wide" }],
      ["started", e => timeEl(e.created_at)],
    ], rows, { empty: "no evacuations yet", rowAttrs: e => ({ "data-evacuation": e.id, "data-state": e.state }) }));
    if (rows.some(e => e.state === "running")) timer = setTimeout(() => load().catch(() => {}), POLL_MS);
  };
  await load();
  mark("evacuations");
  return () => clearTimeout(timer);
}

export async function evacuation(main, [id]) {
  let timer = null;
  let stopped = false;
  const draw = e => fill(main, heading("Evacuation ", h("code", {}, e.id)),
    h("p", {}, stateBadge(e.state), ` ${e.host} → ${e.to_host} · `, link("#/evacuations", "all evacuations")),
    h("dl", { class: "facts" },
      h("dt", {}, "volumes"), h("dd", { "data-fact": "volumes" }, `${e.migrations.length}: ${counts(e)}`),
      h("dt", {}, "moved"), h("dd", {}, bytes(e.bytes)),
      h("dt", {}, "longest downtime"), h("dd", {}, secs(e.downtime_max_seconds)),
      h("dt", {}, "started"), h("dd", {}, when(e.created_at)),
      h("dt", {}, "finished"), h("dd", {}, e.finished_at ? when(e.finished_at) : "—")),
    table([
      ["volume", m => m.source.volume],
      ["migration", m => link(migHref(m.id), m.id)],
      ["state", m => stateBadge(m.state)],
      ["downtime", m => (m.cutover === "none" ? "none (no stop)" : secs(m.downtime_seconds))],
      ["verify", m => m.verify_outcome || "—"],
      ["reason", m => (m.reason ? errorCell({ error: m.reason }) : "")],
    ], e.migrations, { caption: "Its migrations, one per volume",
      rowAttrs: m => ({ "data-migration": m.id, "data-state": m.state }) }),
    h("div", { class: "actions" },
      link(mdHref(e.id), "Report as Markdown", { class: "button", target: "_blank", rel: "noopener" })));
  const poll = async () => {
    const e = await api(`/evacuations/${encodeURIComponent(id)}`);
    if (stopped) return;
    draw(e);
    if (e.migrations.some(m => ACTIVE.has(m.state))) timer = setTimeout(() => poll().catch(() => {}), POLL_MS);
  };
  await poll();
  mark("evacuation");
  return () => { stopped = true; clearTimeout(timer); };
}

// Start one: from host, to host, how many at once, the cut-over, the target the data
// goes through; Check runs the dry run (every volume's checks), Start queues them.
export async function evacuate(main, _params, ctx, query) {
  if (!ctx.can("operator")) {
    fill(main, heading("Evacuate a host"), h("p", {}, "Evacuating needs the operator role; this token is a viewer."));
    return;
  }
  const [hosts, targets] = await Promise.all([api("/hosts"), api("/targets")]);
  const names = hosts.map(x => x.name);
  if (names.length < 2) {  // nowhere to move to: a form whose Check could do nothing
    fill(main, heading("Evacuate a host"), h("p", {}, "Evacuating needs a second host to move the volumes to: ",
      "a host registers when its worker starts (", h("code", {}, "volkeeper worker"), " on it). ",
      link("#/hosts", "Hosts")));
    mark("evacuate");
    return;
  }
  const from = query.get("host") || names[0] || "";
  const f = {
    host: select(names, from, { name: "host" }),
    toHost: select([["", "choose a host"], ...names.filter(n => n !== from)], "", { name: "to-host", required: true }),
    concurrency: h("input", { type: "number", name: "concurrency", min: 1, max: 32, value: 2 }),
    cutover: select([["stop", "stop the containers using each volume"], ["none", "no stop (a copy of live data)"]], "stop", { name: "cutover" }),
    via: select([["", "the default target"], ...targets.map(t => t.name)], "", { name: "via" }),
  };
  f.host.addEventListener("change", () => fill(f.toHost, h("option", { value: "" }, "choose a host"),
    names.filter(n => n !== f.host.value).map(n => h("option", { value: n }, n))));
  const result = h("div", { "aria-live": "polite" });
  const body = dry => ({ host: f.host.value, to_host: f.toHost.value, concurrency: Number(f.concurrency.value),
    cutover: f.cutover.value, via: f.via.value || null, dry_run: dry });
  const start = async ev => {
    ev.target.disabled = true;
    try {
      const e = await api("/evacuations", { method: "POST", body: body(false) });
      location.hash = evHref(e.id);
    } catch (e) { ev.target.disabled = false; fill(result, errorBox(e, { title: "Not started" })); }
  };
  const check = async () => {
    fill(result, h("p", { class: "muted" }, "Checking every volume…"));
    let r;
    try {
      r = await api("/evacuations", { method: "POST", body: body(true) });
    } catch (e) { fill(result, errorBox(e, { title: "Not checked" })); return; }
    const bad = r.volumes.filter(v => !v.ok);
    fill(result, h("h2", { id: "evac-checks-h" }, r.ok ? "All checks passed" : "Some checks failed"),
      h("p", {}, `${r.volumes.length} volume${r.volumes.length === 1 ? "" : "s"} of ${f.host.value}`,
        bad.length ? `; ${bad.length} cannot move yet (fix what the checks name, then check again)` : " can move"),
      h("ul", { class: "evac-volumes" }, r.volumes.map(v => h("li", { "data-volume": v.volume, class: v.ok ? "ok" : "bad" },
        h("details", { open: !v.ok }, h("summary", {}, h("strong", {}, v.volume), " ", badge(v.ok ? "ok" : "failed")),
          checkList(v.checks))))),
      r.ok ? h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: start },
        "Start evacuation")) : null);
  };
  fill(main, heading("Evacuate a host"),
    h("p", { class: "muted" }, "Every volume of the host (but volkeeper's own) is migrated to the other host under the same name. ",
      link("#/evacuations", "All evacuations")),
    h("form", { class: "panel", "aria-label": "Evacuate a host", onsubmit: ev => { ev.preventDefault(); check(); } },
      h("div", { class: "row" }, field("From host", f.host), field("To host", f.toHost),
        field("At once", f.concurrency, "volumes moved at the same time, 1 to 32"), field("Cut-over", f.cutover),
        field("Via target", f.via)),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Check"))),
    result);
  mark("evacuate");
}
