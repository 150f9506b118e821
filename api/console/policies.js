// Policies: the list (viewers read it, operators run one now, admins change them) and the
// form to create or edit one, with a cron helper that shows the next runs as the
// scheduler computes them (GET /policies/preview-schedule) and a retention preview of the
// form as it stands (POST /policies/preview-retention): nothing is saved until "Save".

import { api } from "./api.js";
import { retentionPreview } from "./policy-preview.js";
import { badge, dialog, errorBox, field, fill, h, link, mark, select, table, timeEl, toast, when }
  from "./ui.js";

const heading = text => h("h1", { tabindex: -1 }, text);
const editHref = p => `#/policies/${encodeURIComponent(p.name)}`;
const RETENTION = [["keep_last", "last"], ["keep_hourly", "hourly"], ["keep_daily", "daily"],
  ["keep_weekly", "weekly"], ["keep_monthly", "monthly"], ["keep_yearly", "yearly"]];
const PRESETS = [["", "presets…"], ["@hourly", "every hour"], ["0 2 * * *", "daily at 02:00"],
  ["0 3 * * 0", "weekly, Sunday 03:00"], ["0 4 1 * *", "monthly, the 1st at 04:00"],
  ["@every 6h", "every 6 hours"], ["*/15 * * * *", "every 15 minutes"]];

export function selectionText(p) {
  const parts = [];
  if (p.volumes.length) parts.push(`volumes ${p.volumes.join(", ")}`);
  if (p.selector) parts.push(`label ${p.selector}`);
  if (p.project) parts.push(`project ${p.project}`);
  if (p.hosts.length) parts.push(`${parts.length ? "on" : "all volumes of"} ${p.hosts.join(", ")}`);
  return parts.join(" ");
}

export function retentionText(r) {
  const parts = RETENTION.filter(([k]) => r[k] !== undefined && r[k] !== null)
    .map(([k, word]) => `${r[k] === -1 ? "all" : r[k]} ${word}`);
  if (r.keep_within) parts.push(`all within ${r.keep_within}`);
  if (r.keep_tag && r.keep_tag.length) parts.push(`tagged ${r.keep_tag.join(", ")}`);
  return parts.length ? "keep " + parts.join(", ") : "keep everything";
}

export async function policies(main, _params, ctx) {
  const out = h("div", {});
  const load = async () => {
    const rows = await api("/policies");
    const cols = [
      ["policy", p => (ctx.can("admin") ? link(editHref(p), p.name) : h("strong", {}, p.name))],
      ["selects", selectionText],
      ["schedule", p => h("span", {}, h("code", {}, p.schedule), " ", h("small", { class: "muted" }, p.tz))],
      ["next run", p => (p.enabled ? h("span", { title: when(p.next_run_at) }, when(p.next_run_at))
        : badge("disabled"))],
      ["last run", p => timeEl(p.last_run_at), { class: "wide" }],
      ["targets", p => p.targets.join(", ")],
      ["retention", p => retentionText(p.retention), { class: "wide" }],
      ["RPO", p => p.rpo + (p.rpo_default ? " (default)" : ""), { class: "wide" }],
    ];
    if (ctx.can("operator")) {
      cols.push(["", p => h("span", { class: "row-actions" },
        h("button", { type: "button", class: "small", "aria-label": `Run policy ${p.name} now`,
          onclick: () => runNow(p) }, "Run now"),
        ctx.can("admin") ? h("button", { type: "button", class: "small danger",
          "aria-label": `Delete policy ${p.name}`, onclick: () => remove(p, load) }, "Delete…") : null)]);
    }
    fill(out, table(cols, rows, { empty: "no policies yet", rowAttrs: p => ({ "data-policy": p.name }) }));
  };
  fill(main, heading("Policies"),
    ctx.can("admin") ? h("div", { class: "page-actions" }, link("#/policies/new", "New policy", { class: "button primary" })) : null,
    out);
  await load();
  mark("policies");
}

async function runNow(p) {
  try {
    const r = await api(`/policies/${encodeURIComponent(p.name)}/run`, { method: "POST" });
    toast(`Policy ${p.name}: ${r.jobs.length} backup(s) queued` +
      (r.skipped.length ? `, ${r.skipped.length} skipped` : ""));
  } catch (e) { toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true); }
}

async function remove(p, refresh) {
  const answer = await dialog(`Delete policy ${p.name}?`,
    h("p", {}, `It stops backing up ${selectionText(p)}. Its backups stay, but its retention no longer forgets any of them.`),
    [["Keep it", ""], ["Delete policy", "delete", "danger"]]);
  if (answer !== "delete") return;
  try {
    await api(`/policies/${encodeURIComponent(p.name)}`, { method: "DELETE" });
    toast(`Policy ${p.name} deleted`);
    await refresh();
  } catch (e) { toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true); }
}

const list = text => text.split(",").map(s => s.trim()).filter(Boolean);
const num = el => (el.value.trim() === "" ? undefined : Number(el.value));

// The next runs of the schedule as typed, refreshed as it changes (debounced).
function cronHelper(schedule, tz, jitter, name) {
  const box = h("div", { class: "next-runs", "aria-live": "polite" });
  let timer = null;
  let seq = 0;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      if (!schedule.value.trim()) { fill(box, h("span", { class: "muted" }, "type a schedule to see its next runs")); return; }
      try {
        const r = await api("/policies/preview-schedule", { query: {
          schedule: schedule.value, tz: tz.value || "UTC", count: 5,
          jitter_seconds: jitter.value || 0, policy: name.value } });
        if (mine !== seq) return;
        fill(box, h("strong", {}, "Next runs "), h("small", { class: "muted" },
          `(${r.tz}; at most ${r.interval} apart, default RPO ${r.default_rpo})`),
        h("ol", { class: "runs" }, r.runs.map(t => h("li", {}, h("time", { datetime: t }, t.replace("T", " ").slice(0, 16)),
          h("small", { class: "muted" }, " " + t.slice(19) + " · " + when(t))))));
      } catch (e) {
        if (mine === seq) fill(box, errorBox(e, { title: "Schedule" }));
      }
    }, 250);
  };
  for (const el of [schedule, tz, jitter, name]) el.addEventListener("input", refresh);
  refresh();
  return box;
}

export async function policyForm(main, params, ctx) {
  const editing = params[0] && params[0] !== "new" ? params[0] : null;
  if (!ctx.can("admin")) {
    fill(main, heading("Policies"), h("p", {}, "Changing policies needs the admin role."));
    return;
  }
  const [p, targets] = await Promise.all([
    editing ? api(`/policies/${encodeURIComponent(editing)}`) : null, api("/targets")]);
  const v = p || { volumes: [], hosts: [], selector: "", project: "", schedule: "0 2 * * *",
    tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC", jitter_seconds: 0,
    targets: targets.length ? [targets[0].name] : [], format: null, retention: { keep_daily: 7, keep_weekly: 4 },
    rpo: "", rpo_default: true, verify_subset: null, verify_schedule: "", drill_schedule: "", enabled: true,
    stop_containers: false, excludes: [], snapshot: null, dump: null };
  const text = (name, value, attrs = {}) => h("input", { type: "text", name, value: value || "", ...attrs });
  const f = {
    name: text("name", editing || "", { required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*", readonly: !!editing }),
    volumes: text("volumes", v.volumes.join(", "), { placeholder: "pgdata, uploads" }),
    hosts: text("hosts", v.hosts.join(", ")),
    selector: text("selector", v.selector, { placeholder: "volkeeper.policy=nightly" }),
    project: text("project", v.project),
    schedule: text("schedule", v.schedule, { required: true }),
    tz: text("tz", v.tz, { list: "tz-list" }),
    jitter: h("input", { type: "number", name: "jitter_seconds", min: 0, max: 86400, value: v.jitter_seconds }),
    format: select([["", "server default"], "repo", "tar", "tar.gz", "tar.zst"], v.format || "", { name: "format" }),
    rpo: text("rpo", v.rpo_default ? "" : v.rpo, { placeholder: "default: twice the interval" }),
    verify: text("verify_schedule", v.verify_schedule, { placeholder: "e.g. @weekly" }),
    // a PUT replaces the whole policy: every field the API has is in the form
    subset: h("input", { type: "number", name: "verify_subset", min: 0.01, max: 100, step: "any",
      value: v.verify_subset ?? "", placeholder: "structure check" }),
    drill: text("drill_schedule", v.drill_schedule, { placeholder: "e.g. 0 5 1 * *" }),
    within: text("keep_within", v.retention.keep_within, { placeholder: "e.g. 30d" }),
    keepTag: text("keep_tag", (v.retention.keep_tag || []).join(", ")),
    enabled: h("input", { type: "checkbox", name: "enabled", checked: v.enabled }),
    stop: h("input", { type: "checkbox", name: "stop_containers", checked: !!v.stop_containers }),
    excludes: text("excludes", (v.excludes || []).join(", "), { placeholder: "cache/**, *.tmp" }),
    snapshot: select([["", "label or off"], "auto", "btrfs", "zfs", "lvm", "off"], v.snapshot || "", { name: "snapshot" }),
    dump: select([["", "files (or the label)"], "postgres", "mysql", "mariadb", "redis", "sqlite", "mongodb"],
      v.dump || "", { name: "dump" }),
    databases: text("dump_databases", (v.dump_databases || []).join(", "), { placeholder: "e.g. shop, crm (default: all)" }),
  };
  const keep = Object.fromEntries(RETENTION.map(([k]) => [k,
    h("input", { type: "number", name: k, min: -1, value: v.retention[k] ?? "" })]));
  const targetBoxes = targets.map(t => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "targets", value: t.name, checked: v.targets.includes(t.name) }), " ", t.name));
  const preset = select(PRESETS, "", { name: "preset", "aria-label": "Schedule presets" });
  preset.addEventListener("change", () => {
    if (!preset.value) return;
    f.schedule.value = preset.value;
    preset.value = "";
    f.schedule.dispatchEvent(new Event("input"));
  });
  const zones = h("datalist", { id: "tz-list" }, ["UTC", "Europe/Berlin", "Europe/London", "America/New_York",
    "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"].map(z => h("option", { value: z })));

  const body = () => {
    const retention = {};
    for (const [k] of RETENTION) if (num(keep[k]) !== undefined) retention[k] = num(keep[k]);
    if (f.within.value.trim()) retention.keep_within = f.within.value.trim();
    if (list(f.keepTag.value).length) retention.keep_tag = list(f.keepTag.value);
    return {
      volumes: list(f.volumes.value), hosts: list(f.hosts.value),
      selector: f.selector.value.trim() || null, project: f.project.value.trim() || null,
      schedule: f.schedule.value.trim(), tz: f.tz.value.trim() || "UTC",
      jitter_seconds: Number(f.jitter.value || 0),
      targets: targetBoxes.map(l => l.querySelector("input")).filter(i => i.checked).map(i => i.value),
      format: f.format.value || null, retention, rpo: f.rpo.value.trim() || null,
      verify_subset: num(f.subset) ?? null,
      verify_schedule: f.verify.value.trim() || null, drill_schedule: f.drill.value.trim() || null,
      enabled: f.enabled.checked, stop_containers: f.stop.checked, excludes: list(f.excludes.value),
      snapshot: f.snapshot.value || null, dump: f.dump.value || null,
      dump_databases: list(f.databases.value),
    };
  };
  const status = h("div", { "aria-live": "polite" });
  const previewBox = h("div", { "aria-live": "polite" });
  const save = async () => {
    fill(status);
    try {
      const saved = editing
        ? await api(`/policies/${encodeURIComponent(editing)}`, { method: "PUT", body: body() })
        : await api("/policies", { method: "POST", body: { name: f.name.value.trim(), ...body() } });
      toast(`Policy ${saved.name} saved; next run ${when(saved.next_run_at)}`);
      location.hash = "#/policies";
    } catch (e) { fill(status, errorBox(e, { title: "Not saved" })); }
  };
  const fieldset = (legend, ...children) => h("fieldset", {}, h("legend", {}, legend), children);
  fill(main, heading(editing ? `Policy ${editing}` : "New policy"),
    h("form", { class: "panel policy-form", "aria-label": "Policy", onsubmit: ev => { ev.preventDefault(); save(); } },
      zones,
      field("Name", f.name),
      fieldset("What (any of these; hosts alone: all their volumes)",
        h("div", { class: "row" }, field("Volumes (comma separated)", f.volumes), field("Label selector", f.selector),
          field("Compose project", f.project), field("Hosts (comma separated)", f.hosts))),
      fieldset("When",
        h("div", { class: "row" }, field("Schedule (cron, preset or @every)", f.schedule), preset,
          field("Time zone", f.tz), field("Jitter (seconds)", f.jitter)),
        cronHelper(f.schedule, f.tz, f.jitter, f.name)),
      fieldset("Where", targetBoxes.length ? targetBoxes : h("p", { class: "bad" }, "no targets: add one first"),
        h("small", { class: "muted" }, "the first checked target gets the backup, the others a copy"),
        field("Format", f.format)),
      fieldset("How long (retention; empty: keep every backup)",
        h("div", { class: "row" }, RETENTION.map(([k, word]) => field(`Keep ${word}`, keep[k])),
          field("Keep all within", f.within), field("Keep tagged", f.keepTag)),
        h("button", { type: "button", onclick: () => retentionPreview(previewBox, body()) }, "Preview retention"),
        previewBox),
      fieldset("How fresh and how checked",
        h("div", { class: "row" }, field("RPO", f.rpo), field("Verify schedule", f.verify),
          field("Verify reads back (%)", f.subset), field("Drill schedule", f.drill))),
      fieldset("How consistent (a label on a container or the volume wins)",
        h("div", { class: "row" }, h("label", { class: "check" }, f.stop, " stop the containers"),
          field("Exclude (globs, comma separated)", f.excludes), field("Snapshot", f.snapshot),
          field("Database dump", f.dump), field("Databases (comma-separated)", f.databases))),
      h("label", { class: "check" }, f.enabled, " enabled"),
      status,
      h("div", { class: "actions" }, link("#/policies", "Cancel", { class: "button" }),
        h("button", { type: "submit", class: "primary" }, editing ? "Save policy" : "Create policy"))));
  (editing ? f.schedule : f.name).focus();
  mark("policy");
}
