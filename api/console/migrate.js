// The migration wizard: volume → destination (host, name, driver with its options, via
// target, cut-over) → validation (the dry run, check by check with its hints) → plan with
// a downtime estimate → run with its phases live → report. The API's checks and role
// rules stay the only ones (removing the source is offered to admins only).

import { api } from "./api.js";
import { checkList, followMigration, migHref } from "./migrations.js";
import { bytes, duration, errorBox, field, fill, h, link, mark, parseTime, select } from "./ui.js";

const STEPS = ["Volume", "Destination", "Check", "Plan", "Migrate"];
const secs = s => (s < 10 ? `${s.toFixed(1)} s` : duration(s));

// "k=v" per line (or comma-separated) → {k: v}; an error names the line to fix.
export function parseOptions(text) {
  const out = {};
  for (const raw of text.split(/[\n,]/)) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`driver option "${line}" is not key=value (e.g. o=bind)`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

// How long the application would be down, from the volume's size and its recent backups
// (the cut-over is one incremental backup of what changed plus applying it; the pre-copy
// a full backup plus a restore while the application runs).
export function estimate(sizeBytes, backupJobs, cutover) {
  const runs = backupJobs.filter(j => j.started_at && j.finished_at).map(j => ({
    secs: Math.max(0.001, (parseTime(j.finished_at) - parseTime(j.started_at)) / 1000),
    bytes: (j.result || {}).logical_bytes,
  }));
  if (!runs.length) {
    return { copy: null, downtime: cutover === "none" ? 0 : null,
      text: "unknown: this volume has no finished backup to time yet (back it up once for an estimate)" };
  }
  const longest = runs.reduce((a, b) => (b.secs > a.secs ? b : a));
  const scale = sizeBytes && longest.bytes ? Math.max(1, sizeBytes / longest.bytes) : 1;
  const copy = 2 * longest.secs * scale;  // a full backup, then its restore
  const downtime = cutover === "none" ? 0 : Math.min(copy, 2 * Math.min(...runs.map(r => r.secs)));
  const basis = `from ${runs.length} recent backup${runs.length === 1 ? "" : "s"} of this volume (longest ${secs(longest.secs)}, shortest ${secs(Math.min(...runs.map(r => r.secs)))})`;
  return { copy, downtime, text: cutover === "none"
    ? `no downtime (nothing is stopped); the copy takes about ${secs(copy)}, ${basis}`
    : `about ${secs(downtime)} of downtime (a final incremental backup plus applying it); the copy before it about ${secs(copy)} while the application runs — ${basis}` };
}

export async function migrateWizard(main, _params, ctx, query) {
  if (!ctx.can("operator")) {
    fill(main, h("h1", { tabindex: -1 }, "Migrate"),
      h("p", {}, "Migrating needs the operator role; this token is a viewer."));
    return;
  }
  const [vols, hosts, targets] = await Promise.all([api("/volumes"), api("/hosts"), api("/targets")]);
  const st = { step: 0, host: query.get("host") || "", volume: query.get("volume") || "",
    toHost: "", toVolume: "", driver: "local", opts: "", via: "", cutover: "stop",
    removeSource: false, check: null, migration: null };
  let stop = () => {};
  const vol = () => vols.find(v => v.host === st.host && v.name === st.volume);
  const body = () => ({ volume: st.volume, host: st.host, to_host: st.toHost,
    to_volume: st.toVolume || null, driver: st.driver || "local", driver_opts: parseOptions(st.opts),
    via: st.via || null, cutover: st.cutover, remove_source: st.removeSource });

  const stepper = () => h("ol", { class: "stepper", "aria-label": "Migration steps" },
    STEPS.map((s, i) => h("li", { class: i < st.step ? "done" : "", "aria-current": i === st.step ? "step" : null }, s)));
  const nav = (back, next, nextLabel = "Next") => h("div", { class: "actions" },
    back ? h("button", { type: "button", onclick: back }, "Back") : null,
    next ? h("button", { type: "submit", class: "primary" }, nextLabel) : null);
  const show = (title, content, onsubmit) => {
    const form = h("form", { class: "wizard", "aria-labelledby": "wizard-h",
      onsubmit: ev => { ev.preventDefault(); onsubmit && onsubmit(); } },
    h("h2", { id: "wizard-h", tabindex: -1 }, title), content);
    fill(main, h("h1", {}, "Migrate"), stepper(), form);
    form.querySelector("h2").focus();
    return form;
  };
  const go = async step => {
    st.step = step;
    try {
      await VIEWS[step]();
    } catch (e) {
      show("This step could not load", h("div", {}, errorBox(e), nav(step ? () => go(step - 1) : null, null)));
    }
  };

  const VIEWS = [
    // 0: volume
    async () => {
      const keys = vols.map(v => `${v.host}/${v.name}`).sort();
      const sel = select(vols.map(v => [`${v.host}/${v.name}`, `${v.host}/${v.name} — ${v.driver}, ${bytes(v.size_bytes)}`])
        .sort((a, b) => a[0].localeCompare(b[0])), st.host ? `${st.host}/${st.volume}` : keys[0],
      { name: "volume", size: Math.min(Math.max(keys.length, 2), 10) });
      show("Which volume?", keys.length ? h("div", {}, field("Volume (host/name)", sel), nav(null, true))
        : h("p", {}, "No volumes in the inventory."), async () => {
        const [host, ...rest] = sel.value.split("/");
        if (host !== st.host || rest.join("/") !== st.volume) st.toVolume = "";
        st.host = host; st.volume = rest.join("/");
        await go(1);
      });
    },
    // 1: destination
    async () => {
      const online = hosts.filter(x => x.online).map(x => x.name);
      if (!online.includes(st.host)) online.unshift(st.host);
      const toHost = select(online, st.toHost || st.host, { name: "to-host" });
      const toVolume = h("input", { type: "text", name: "to-volume", required: true,
        pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*", value: st.toVolume || `${st.volume}-migrated` });
      const driver = h("input", { type: "text", name: "driver", value: st.driver, required: true });
      const opts = h("textarea", { name: "driver-opts", rows: 3, placeholder: "type=none\no=bind\ndevice=/srv/data" });
      opts.value = st.opts;
      const via = select([["", "server default"], ...targets.map(t => [t.name, t.name])], st.via, { name: "via" });
      const cutover = select([["stop", "stop the containers using it for the final copy"],
        ["none", "no stop (the final copy may miss writes in flight)"]], st.cutover, { name: "cutover" });
      const remove = h("input", { type: "checkbox", name: "remove-source", checked: st.removeSource });
      const problem = h("div", { "aria-live": "polite" });
      const v = vol();
      show(`Where should ${st.host}/${st.volume} go?`, h("div", {},
        v ? h("p", { class: "muted" }, `${v.driver}, ${bytes(v.size_bytes)}; used by ${v.containers.length
          ? v.containers.map(c => `${c.name} (${c.state})`).join(", ") : "no container"}`) : null,
        h("div", { class: "row" }, field("Destination host", toHost), field("Destination volume name", toVolume)),
        h("div", { class: "row" }, field("Volume driver", driver),
          field("Driver options (key=value, one a line)", opts, "local: type, o, device — e.g. a bind to a directory")),
        h("div", { class: "row" }, field("Via target", via), field("Cut-over", cutover)),
        ctx.can("admin") ? h("label", { class: "check" }, remove,
          " remove the source after a verified copy (a pinned safety backup is taken first)") : null,
        problem, nav(() => go(0), true, "Check")), async () => {
        Object.assign(st, { toHost: toHost.value, toVolume: toVolume.value.trim(),
          driver: driver.value.trim(), opts: opts.value, via: via.value, cutover: cutover.value,
          removeSource: remove.checked });
        try { parseOptions(st.opts); } catch (e) { fill(problem, errorBox(e)); return; }
        await go(2);
      });
    },
    // 2: the dry run, check by check
    async () => {
      show("Checking (dry run on both hosts)…", h("p", { class: "muted", "aria-live": "polite" },
        "Running the migration's checks without changing anything…"));
      let c;
      try {
        c = await api("/migrations", { method: "POST", body: { ...body(), dry_run: true } });
      } catch (e) {
        show("The check could not run", h("div", {}, errorBox(e), nav(() => go(1), null)));
        return;
      }
      st.check = c;
      show(c.ok ? "All checks passed" : "Some checks failed", h("div", {},
        checkList(c.checks),
        c.ok ? null : h("p", { class: "bad" }, "Go back and change the destination, or fix what failed and check again."),
        nav(() => go(1), c.ok, "Continue")), () => go(3));
    },
    // 3: the plan and its downtime estimate
    async () => {
      const [info, jobs] = await Promise.all([
        api(`/hosts/${encodeURIComponent(st.host)}/volumes/${encodeURIComponent(st.volume)}`).catch(() => null),
        api("/jobs", { query: { host: st.host, volume: st.volume, kind: "backup", job_state: "succeeded", limit: 20 } })]);
      // the inventory's measure, else what the newest backup read
      const newest = jobs.find(j => j.result && j.result.logical_bytes != null);
      const measured = info && info.size_bytes != null;
      const size = measured ? info.size_bytes : newest ? newest.result.logical_bytes : null;
      const est = estimate(size, jobs, st.cutover);
      const b = body();
      show("The plan", h("div", {},
        h("p", { "data-plan": "" }, st.check.plan),
        h("dl", { class: "facts" },
          h("dt", {}, "size"), h("dd", {}, size == null ? "not measured yet"
            : bytes(size) + (measured ? "" : " (as its newest backup read it)")),
          h("dt", {}, "downtime"), h("dd", { "data-estimate": est.downtime == null ? "unknown" : "known" }, est.text),
          h("dt", {}, "destination"), h("dd", {}, `${b.to_host}/${b.to_volume || b.volume}, driver ${b.driver}`
            + Object.entries(b.driver_opts).map(([k, v]) => `, ${k}=${v}`).join("")),
          b.remove_source ? [h("dt", {}, "source"), h("dd", { class: "warn" }, "removed after the verify (a pinned safety backup keeps it)")] : null),
        nav(() => go(2), true, "Start migration")), async () => {
        try {
          st.migration = await api("/migrations", { method: "POST", body: b });
        } catch (e) {
          main.querySelector("form").append(errorBox(e));
          return;
        }
        await go(4);
      });
    },
    // 4: run with its phases live, then the report
    async () => {
      const m = st.migration;
      const box = h("div", { class: "migration-live" });
      show(`Migrating ${m.source.host}/${m.source.volume} to ${m.destination.host}/${m.destination.volume}`,
        h("div", {}, h("p", {}, "Migration ", link(migHref(m.id), m.id)), box));
      stop = followMigration(box, m.id, ctx, { onEnd: done => {
        const heading = main.querySelector("#wizard-h");
        if (heading) heading.textContent = { succeeded: "Migrated", rolled_back: "Rolled back",
          cancelled: "Cancelled (rolled back)" }[done.state] || "The migration failed";
      } });
    },
  ];

  if (st.host && st.volume && vol()) await go(1);
  else await go(0);
  mark("migrate");
  return () => stop();
}
