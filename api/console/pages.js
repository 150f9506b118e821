// The read views and the live parts: overview, volumes and a volume (with Back up now),
// jobs and a job, targets, hosts, audit log. Backups live in backups.js, the restore
// wizard in wizard.js.

import { api, FINISHED, followJob, hasFeature } from "./api.js";
import { backupsPage, timeline } from "./backups.js";
import { age, badge, bytes, errorBox, field, fill, h, link, parseTime, progressView, select,
  splitError, table, timeEl, toast, when } from "./ui.js";

export { backupsPage as backups };

const jobHref = j => `#/jobs/${encodeURIComponent(j.id)}`;
const volHref = (host, name) => `#/volumes/${encodeURIComponent(host)}/${encodeURIComponent(name)}`;
const WIDE = { class: "wide" };  // hidden on narrow screens
const subject = j => (j.volume ? `${j.host}/${j.volume}` : `target ${j.target || "?"} on ${j.host}`);
const heading = (text, ...rest) => h("h1", { tabindex: -1 }, text, ...rest);

function jobLine(j) {
  const { message } = splitError(j.error || "");
  return message;
}

// Running jobs with live bars; `box` is refilled on every poll. The first few follow
// their event stream (a browser holds only ~6 connections to one server over HTTP/1.1,
// and the page still needs some for its reads); the others take the progress each poll
// brings.
const MAX_STREAMS = 3;

function cancelButton(j) {
  return h("button", { type: "button", class: "small danger", "aria-label": `Cancel job ${j.id}`,
    onclick: async ev => {
      ev.target.disabled = true;
      try {
        await api(`/jobs/${j.id}/cancel`, { method: "POST" });
        toast(`Cancel of job ${j.id} requested`);
      } catch (e) {
        ev.target.disabled = false;
        toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true);
      }
    } }, "Cancel");
}

function liveJobs(box, canCancel) {
  const followed = new Map();
  const streams = () => [...followed.values()].filter(f => f.stream && !f.done).length;
  const update = jobs => {
    const ids = new Set(jobs.map(j => j.id));
    for (const [id, f] of followed) {
      if (!ids.has(id) && (f.done || !f.stream)) { f.stop(); f.row.remove(); followed.delete(id); }
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
      const entry = { row, view, done: false, stream: streams() < MAX_STREAMS, stop: () => {} };
      if (entry.stream) {
        entry.stop = followJob(j.id, {
          onProgress: p => view.set(p, "running"),
          onEnd: job => {
            view.set(job.progress, job.state);
            entry.done = true;
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

export async function overview(main, _params, ctx) {
  const live = h("ul", { class: "live-jobs", "aria-label": "Running jobs" });
  const jobsLive = liveJobs(live, ctx.can("operator") && await hasFeature("cancel"));
  const cards = h("div", { class: "cards" });
  const failedBox = h("div", {});
  const storage = h("div", {});
  fill(main, heading("Overview"), cards,
    h("section", { "aria-labelledby": "running-h" }, h("h2", { id: "running-h" }, "Running jobs"), live),
    h("section", { "aria-labelledby": "failed-h" }, h("h2", { id: "failed-h" }, "Failed in the last 24 h"), failedBox),
    h("section", { "aria-labelledby": "storage-h" }, h("h2", { id: "storage-h" }, "Storage per target"), storage));
  const load = async () => {
    const [hosts, volumes, running, queued, failed, targets] = await Promise.all([
      api("/hosts"), api("/volumes"), api("/jobs", { query: { job_state: "running", limit: 100 } }),
      api("/jobs", { query: { job_state: "queued", limit: 100 } }),
      api("/jobs", { query: { job_state: "failed", limit: 200 } }), api("/targets")]);
    const dayAgo = Date.now() - 86400e3;
    const recent = failed.filter(j => (parseTime(j.finished_at || j.created_at) || 0) >= dayAgo);
    const online = hosts.filter(x => x.online).length;
    const card = (label, value, href, bad) => h("a", { class: "card" + (bad ? " bad" : ""), href },
      h("span", { class: "value" }, String(value)), h("span", { class: "label" }, label));
    fill(cards,
      card("hosts online", `${online} / ${hosts.length}`, "#/hosts", online < hosts.length),
      card("volumes", volumes.length, "#/volumes"),
      card("failed jobs, 24 h", recent.length, "#/jobs?state=failed", recent.length > 0),
      card("running jobs", running.length + queued.length, "#/jobs?state=running"));
    jobsLive.update([...running, ...queued]);
    fill(failedBox, table([
      ["job", j => link(jobHref(j), j.id)], ["kind", j => j.kind],
      ["volume", subject], ["when", j => timeEl(j.finished_at || j.created_at)],
      ["error", jobLine]], recent, { empty: "no failures" }));
    fill(storage, table([
      ["target", t => t.name], ["url", t => h("code", {}, t.url)],
      ["backups", t => t.backup_count], ["stored", t => bytes(t.stored_bytes)]], targets));
  };
  await load();
  const timer = setInterval(() => load().catch(() => {}), 4000);
  return () => { clearInterval(timer); jobsLive.stop(); };
}

export async function volumes(main, _params, ctx) {
  const search = h("input", { type: "search", name: "q", placeholder: "name, host, driver, container" });
  const hostSel = select([["", "all hosts"]], "", { name: "host" });
  const out = h("div", {});
  fill(main, heading("Volumes"),
    h("form", { class: "filters", role: "search", "aria-label": "Filter volumes",
      onsubmit: ev => ev.preventDefault() },
    field("Search", search), field("Host", hostSel)), out);
  const [rows, hosts] = await Promise.all([api("/volumes"), api("/hosts")]);
  for (const x of hosts) hostSel.append(h("option", { value: x.name }, x.name));
  rows.sort((a, b) => a.name.localeCompare(b.name) || a.host.localeCompare(b.host));
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = rows.filter(v => (!hostSel.value || v.host === hostSel.value) && (!q ||
      [v.name, v.host, v.driver, ...v.containers.map(c => c.name)].some(s => s.toLowerCase().includes(q))));
    const cols = [
      ["volume", v => link(volHref(v.host, v.name), v.name)], ["host", v => v.host],
      ["driver", v => v.driver, WIDE], ["size", v => bytes(v.size_bytes), WIDE],
      ["used by", v => v.containers.length ? v.containers.map(c => `${c.name} (${c.state})`).join(", ")
        : h("span", { class: "muted" }, "no container")],
      ["last backup", v => v.last_backup_at
        ? h("span", { title: when(v.last_backup_at) }, age(v.last_backup_at))
        : h("span", { class: "bad" }, "never")],
    ];
    if (ctx.can("operator")) {
      cols.push(["", v => link(volHref(v.host, v.name) + "?backup=now", "Back up…", { class: "button small", "aria-label": `Back up ${v.name}` })]);
    }
    fill(out, h("p", { class: "muted" }, `${shown.length} of ${rows.length} volumes`),
      table(cols, shown, { empty: "no volume matches" }));
  };
  search.addEventListener("input", draw);
  hostSel.addEventListener("change", draw);
  draw();
  search.focus();
}

function backupNow(host, name, targets, ctx, onDone) {
  const fmt = select([["", "server default"], "repo", "tar", "tar.gz", "tar.zst"], "", { name: "format" });
  const target = select([["", "server default"], ...targets.map(t => [t.name, t.name])], "", { name: "target" });
  const view = progressView(`backup of ${name}`);
  view.el.hidden = true;
  const status = h("div", { "aria-live": "polite" });
  let stop = () => {};
  const button = h("button", { type: "submit", class: "primary" }, "Back up now");
  const form = h("form", { class: "panel", "aria-labelledby": "backup-now-h", onsubmit: async ev => {
    ev.preventDefault();
    button.disabled = true;
    fill(status);
    try {
      const job = await api("/backups", { method: "POST", body: {
        volume: name, host, format: fmt.value || null, target: target.value || null } });
      view.el.hidden = false;
      view.set(job.progress, job.state);
      fill(status, h("span", {}, "Job "), link(jobHref(job), job.id));
      stop = followJob(job.id, {
        onProgress: p => view.set(p, "running"),
        onEnd: done => {
          view.set(done.progress, done.state);
          button.disabled = false;
          fill(status, h("span", {}, "Job "), link(jobHref(done), done.id), " ", badge(done.state),
            done.error ? errorBox(done.error, { title: "The backup failed" }) : "");
          onDone();
        },
      });
    } catch (e) {
      button.disabled = false;
      fill(status, errorBox(e));
    }
  } }, h("h2", { id: "backup-now-h" }, "Back up now"),
  h("div", { class: "row" }, field("Format", fmt), field("Target", target), button), view.el, status);
  return { form, stop: () => stop() };
}

export async function volume(main, [host, name], ctx, query) {
  const [vol, targets] = await Promise.all([
    api(`/hosts/${encodeURIComponent(host)}/volumes/${encodeURIComponent(name)}`).catch(e => {
      if (e.status === 404) return null;
      throw e;
    }),
    api("/targets")]);
  const backupsBox = h("div", {});
  const jobsBox = h("div", {});
  const load = async () => {
    const [bs, js] = await Promise.all([
      api("/backups", { query: { host, volume: name, limit: 500 } }),
      api("/jobs", { query: { host, volume: name, limit: 50 } })]);
    fill(backupsBox, timeline(bs, ctx, load));
    fill(jobsBox, jobsTable(js));
  };
  const info = vol ? h("dl", { class: "facts" },
    h("dt", {}, "host"), h("dd", {}, host), h("dt", {}, "driver"), h("dd", {}, vol.driver),
    h("dt", {}, "size"), h("dd", {}, vol.size_bytes == null ? "not measured yet" : bytes(vol.size_bytes)),
    h("dt", {}, "used by"), h("dd", {}, vol.containers.length
      ? vol.containers.map(c => `${c.name} (${c.state})`).join(", ") : "no container"),
    h("dt", {}, "mountpoint"), h("dd", {}, h("code", {}, vol.mountpoint || "?")))
    : h("p", { class: "warn" }, `The volume is not in ${host}'s inventory (removed?). Its backups can still be restored.`);
  const now = vol && ctx.can("operator") ? backupNow(host, name, targets, ctx, () => load()) : null;
  fill(main, heading(name, h("small", { class: "muted" }, ` on ${host}`)),
    h("div", { class: "page-actions" }, ctx.can("operator")
      ? link(`#/restore?host=${encodeURIComponent(host)}&volume=${encodeURIComponent(name)}`, "Restore…", { class: "button" }) : null),
    info, now ? now.form : null,
    h("section", { "aria-labelledby": "versions-h" }, h("h2", { id: "versions-h" }, "Backups"), backupsBox),
    h("section", { "aria-labelledby": "vjobs-h" }, h("h2", { id: "vjobs-h" }, "Jobs"), jobsBox));
  await load();
  if (now && query.get("backup") === "now") now.form.querySelector("select").focus();
  return () => now && now.stop();
}

function jobsTable(rows) {
  return table([
    ["job", j => link(jobHref(j), j.id)], ["kind", j => j.kind],
    ["volume", j => (j.volume ? link(volHref(j.host, j.volume), subject(j)) : subject(j))],
    ["state", j => badge(j.state)],
    ["progress", j => j.state === "running"
      ? `${j.progress.phase || ""} ${j.progress.percent != null ? Math.floor(j.progress.percent) + " %" : ""}` : ""],
    ["by", j => j.requested_by || "", WIDE], ["created", j => timeEl(j.created_at)],
    ["error", j => h("span", { class: "bad" }, jobLine(j))],
  ], rows, { empty: "no jobs", rowAttrs: j => ({ "data-job": j.id }) });
}

export async function jobs(main, _params, _ctx, query) {
  const f = {
    job_state: select([["", "any"], "queued", "running", "succeeded", "failed", "cancelled"], query.get("state") || "", { name: "state" }),
    kind: select([["", "any"], "backup", "restore", "verify", "validate", "drill", "forget",
      "copy", "label", "prune", "repair", "stats", "snapshots", "keys", "unlock"], "", { name: "kind" }),
    host: h("input", { type: "text", name: "host" }),
    volume: h("input", { type: "text", name: "volume" }),
  };
  const out = h("div", {});
  const load = async () => {
    const q = Object.fromEntries(Object.entries(f).map(([k, el]) => [k, el.value]));
    fill(out, jobsTable(await api("/jobs", { query: { ...q, limit: 200 } })));
  };
  fill(main, heading("Jobs"),
    h("form", { class: "filters", role: "search", "aria-label": "Filter jobs",
      onsubmit: ev => { ev.preventDefault(); load(); } },
    field("State", f.job_state), field("Kind", f.kind), field("Host", f.host),
    field("Volume", f.volume), h("button", { type: "submit" }, "Filter")), out);
  for (const el of [f.job_state, f.kind]) el.addEventListener("change", load);
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  return () => clearInterval(timer);
}

export function resultView(j) {
  const r = j.result || {};
  if (Array.isArray(r.checks)) {
    return h("ul", { class: "checks" }, r.checks.map(c => h("li", { class: c.ok ? "ok" : "bad" },
      h("span", { "aria-hidden": "true" }, c.ok ? "✓ " : "✗ "), h("strong", {}, c.name), ": ", c.detail,
      h("span", { class: "sr-only" }, c.ok ? " (passed)" : " (failed)"))));
  }
  if (!Object.keys(r).length) return null;
  return h("details", {}, h("summary", {}, "Result"), h("pre", {}, JSON.stringify(r, null, 2)));
}

export async function job(main, [id], ctx) {
  let stop = () => {};
  const view = progressView(`progress of job ${id}`);
  const draw = async j => {
    const cancel = !FINISHED.has(j.state) && ctx.can("operator") && await hasFeature("cancel")
      ? cancelButton(j) : null;
    const rollback = j.kind === "restore" && j.params.mode === "replace" && j.state === "succeeded"
      && j.result && j.result.safety_backup_id && ctx.can("admin")
      ? h("button", { type: "button", class: "danger", onclick: async () => {
        try {
          const rb = await api(`/restores/${j.id}/rollback`, { method: "POST" });
          location.hash = jobHref(rb);
        } catch (e) { toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true); }
      } }, "Roll back this replace") : null;
    view.set(j.progress, j.state);
    fill(main, heading(`${j.kind} job `, h("code", {}, j.id)),
      h("p", {}, badge(j.state), " ", j.volume ? link(volHref(j.host, j.volume), subject(j)) : subject(j)),
      !FINISHED.has(j.state) || (j.state === "succeeded" && j.progress.bytes_total) ? view.el : null,
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
  if (!FINISHED.has(j.state)) {
    stop = followJob(id, { onProgress: p => view.set(p, "running"), onEnd: done => draw(done) });
  }
  return () => stop();
}

export async function targets(main) {
  const rows = await api("/targets");
  fill(main, heading("Targets"), table([
    ["name", t => t.name], ["url", t => h("code", {}, t.url)],
    ["credentials", t => (t.has_credentials ? "stored" : "none")],
    ["backups", t => t.backup_count], ["stored", t => bytes(t.stored_bytes)],
    ["added", t => when(t.created_at)]], rows, { empty: "no targets" }));
}

export async function hosts(main) {
  const rows = await api("/hosts");
  fill(main, heading("Hosts"), table([
    ["host", x => x.name], ["state", x => badge(x.online ? "online" : "offline")],
    ["docker", x => x.docker_version || "?"], ["worker", x => x.worker_version || "?"],
    ["volumes", x => link(`#/volumes`, String(x.volume_count))],
    ["last seen", x => timeEl(x.last_seen_at)], ["inventory", x => timeEl(x.inventory_at)]],
  rows, { empty: "no hosts have registered" }));
}

export async function audit(main, _params, ctx) {
  if (!ctx.can("admin")) {
    fill(main, heading("Audit log"), h("p", {}, "The audit log is for admins."));
    return;
  }
  const f = { actor: h("input", { type: "text", name: "actor" }),
    action: h("input", { type: "text", name: "action", placeholder: "prefix, e.g. target." }),
    since: h("input", { type: "datetime-local", name: "since" }) };
  const out = h("div", {});
  const load = async () => {
    const since = f.since.value ? new Date(f.since.value).toISOString() : "";
    const rows = await api("/audit", { query: { actor: f.actor.value, action: f.action.value, since, limit: 500 } });
    fill(out, table([
      ["when", e => when(e.at)], ["actor", e => e.actor], ["action", e => e.action],
      ["object", e => e.object], ["outcome", e => badge(e.outcome)],
      ["details", e => h("code", {}, JSON.stringify(e.details))]], rows, { empty: "nothing recorded" }));
  };
  fill(main, heading("Audit log"),
    h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log",
      onsubmit: ev => { ev.preventDefault(); load().catch(e => fill(out, errorBox(e))); } },
    field("Actor", f.actor), field("Action", f.action), field("Since", f.since),
    h("button", { type: "submit" }, "Filter")), out);
  await load();
}
