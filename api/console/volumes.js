// Volumes: every volume on every host with its newest backup and RPO state (filter,
// search, drawn a few hundred rows at a time), and one volume's page with its backups
// (timeline), jobs and Back up now with a live bar.

import { api, followJob, hasFeature } from "./api.js";
import { timeline } from "./backups.js";
import { jobsTable } from "./jobs.js";
import { WIDE, heading, jobHref, volHref } from "./live.js";
import { age, badge, bytes, duration, errorBox, field, fill, h, link, mark, progressView, select,
  table, when } from "./ui.js";

// Overdue against the policy's RPO, within it, or no policy.
function rpoState(v) {
  if (!v.policy) return h("span", { class: "muted" }, "no policy");
  const rpo = v.rpo_seconds ? `RPO ${duration(v.rpo_seconds)}` : "";
  return h("span", { title: `policy ${v.policy}${v.policy_conflict.length ? "; also matched by " + v.policy_conflict.join(", ") : ""}` },
    v.overdue ? badge("overdue") : badge("ok"), " ", h("small", { class: "muted" }, `${v.policy} · ${rpo}`));
}

const SHOW = 200;  // rows drawn at a time (the rest on "Show more")

export async function volumes(main, _params, ctx, query) {
  const search = h("input", { type: "search", name: "q", placeholder: "name, host, driver, container, policy" });
  const hostSel = select([["", "all hosts"]], "", { name: "host" });
  const stateSel = select([["", "any"], ["overdue", "overdue"], ["ok", "within RPO"], ["none", "no policy"]],
    query.get("overdue") ? "overdue" : "", { name: "rpo" });
  const out = h("div", {});
  fill(main, heading("Volumes"),
    h("form", { class: "filters", role: "search", "aria-label": "Filter volumes",
      onsubmit: ev => ev.preventDefault() },
    field("Search", search), field("Host", hostSel), field("RPO state", stateSel)), out);
  const [rows, hosts] = await Promise.all([api("/volumes"), api("/hosts")]);
  for (const x of hosts) hostSel.append(h("option", { value: x.name }, x.name));
  rows.sort((a, b) => a.name.localeCompare(b.name) || a.host.localeCompare(b.host));
  for (const v of rows) {
    v.haystack = [v.name, v.host, v.driver, v.policy || "", ...v.containers.map(c => c.name)].join("\n").toLowerCase();
  }
  const cols = [
    ["volume", v => link(volHref(v.host, v.name), v.name)], ["host", v => v.host],
    ["driver", v => v.driver, WIDE], ["size", v => bytes(v.size_bytes), WIDE],
    ["used by", v => (v.containers.length ? v.containers.map(c => `${c.name} (${c.state})`).join(", ")
      : h("span", { class: "muted" }, "no container")), WIDE],
    ["last backup", v => (v.last_backup_at
      ? h("span", { title: when(v.last_backup_at) }, age(v.last_backup_at))
      : h("span", { class: "bad" }, "never"))],
    ["RPO", rpoState],
  ];
  if (ctx.can("operator")) {
    cols.push(["", v => link(volHref(v.host, v.name) + "?backup=now", "Back up…", { class: "button small", "aria-label": `Back up ${v.name}` })]);
  }
  let limit = SHOW;
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const st = stateSel.value;
    const shown = rows.filter(v => (!hostSel.value || v.host === hostSel.value)
      && (!st || (st === "none" ? !v.policy : st === "overdue" ? v.overdue : v.policy && !v.overdue))
      && (!q || v.haystack.includes(q)));
    const more = shown.length > limit
      ? h("button", { type: "button", onclick: () => { limit += SHOW; draw(); } },
        `Show ${Math.min(SHOW, shown.length - limit)} more`) : null;
    fill(out, h("p", { class: "muted", "aria-live": "polite" },
      `${shown.length} of ${rows.length} volumes${shown.length > limit ? `, the first ${limit} shown` : ""}`),
    table(cols, shown.slice(0, limit), { empty: "no volume matches" }), more);
  };
  const redraw = () => { limit = SHOW; draw(); };
  search.addEventListener("input", redraw);
  hostSel.addEventListener("change", redraw);
  stateSel.addEventListener("change", redraw);
  draw();
  mark("volumes");
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
  const migrate = vol && ctx.can("operator") && await hasFeature("migrations")
    ? link(`#/migrate?host=${encodeURIComponent(host)}&volume=${encodeURIComponent(name)}`, "Migrate…", { class: "button" }) : null;
  fill(main, heading(name, h("small", { class: "muted" }, ` on ${host}`)),
    h("div", { class: "page-actions" }, ctx.can("operator")
      ? link(`#/restore?host=${encodeURIComponent(host)}&volume=${encodeURIComponent(name)}`, "Restore…", { class: "button" }) : null,
    migrate),
    info, now ? now.form : null,
    h("section", { "aria-labelledby": "versions-h" }, h("h2", { id: "versions-h" }, "Backups"), backupsBox),
    h("section", { "aria-labelledby": "vjobs-h" }, h("h2", { id: "vjobs-h" }, "Jobs"), jobsBox));
  await load();
  mark("volume");
  if (now && query.get("backup") === "now") now.form.querySelector("select").focus();
  return () => now && now.stop();
}
