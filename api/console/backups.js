// Backups: the catalog list with filters, and the actions on one backup (tag, pin/unpin,
// verify, drill, copy, forget) as the role allows — a pinned backup is not offered to be
// forgotten; the volume page reuses the timeline table.

import { api, followJob } from "./api.js";
import { badge, bytes, dialog, errorBox, field, fill, h, link, mark, pager, plural, select, table, timeEl,
  toast, when } from "./ui.js";

const PAGE = 100;

export const volumeHref = b => `#/volumes/${encodeURIComponent(b.host)}/${encodeURIComponent(b.volume)}`;
export const restoreHref = b =>
  `#/restore?host=${encodeURIComponent(b.host)}&volume=${encodeURIComponent(b.volume)}&backup=${encodeURIComponent(b.id)}`;

export function verifyState(b) {
  if (!b.verify_status) return h("span", { class: "muted" }, "not verified");
  return h("span", { title: b.verified_at ? "verified " + when(b.verified_at) : "" },
    badge(b.verify_status));
}

export function tags(b) {
  return h("span", { class: "tags" },
    b.pinned ? h("span", { class: "tag pin" }, "pinned") : null,
    b.kind === "safety" ? h("span", { class: "tag safety" }, "safety") : null,
    (b.tags || []).map(t => h("span", { class: "tag" }, t)));
}

// Run a change; when it queued a job, follow it and refresh once more when it ends (a
// verification's outcome, a forgotten backup gone).
async function run(what, fn, refresh) {
  try {
    const out = await fn();
    const job = out && (out.job !== undefined ? out.job : (out.kind ? out : null));
    toast(job ? `${what}: job ${job.id} queued` : `${what}: done`);
    if (refresh) await refresh();
    if (job) {
      followJob(job.id, { onEnd: async done => {
        toast(`${what}: ${done.state}${done.error ? " — " + done.error : ""}`, done.state !== "succeeded");
        if (refresh) await refresh();
      } });
    }
    return out;
  } catch (e) {
    toast(`${what} failed: ${e.message}${e.hint ? " — " + e.hint : ""}`, true);
    return null;
  }
}

async function editTags(b, refresh) {
  const add = h("input", { type: "text", name: "add", placeholder: "e.g. before-upgrade, keep" });
  const removals = (b.tags || []).map(t => h("label", { class: "check" },
    h("input", { type: "checkbox", value: t }), " remove ", h("code", {}, t)));
  const answer = await dialog(`Tags of backup ${b.id}`,
    h("div", {}, field("Add tags (comma separated)", add), removals),
    [["Cancel", ""], ["Save tags", "save"]]);
  if (answer !== "save") return;
  const addTags = add.value.split(",").map(s => s.trim()).filter(Boolean);
  const removeTags = removals.map(l => l.querySelector("input")).filter(i => i.checked)
    .map(i => i.value);
  if (!addTags.length && !removeTags.length) return;
  await run("Tags", () => api(`/backups/${b.id}`, { method: "PATCH",
    body: { add_tags: addTags, remove_tags: removeTags } }), refresh);
}

async function forget(b, refresh) {
  const lost = b.format === "repo"
    ? [`the snapshot ${b.snapshot_id || ""} of ${b.host}/${b.volume} taken ${when(b.created_at)}`,
       `${plural(b.file_count, "file")}, ${bytes(b.logical_bytes)} of volume data restorable from it`,
       `data only this snapshot references (${bytes(b.stored_bytes)} it added) is reclaimed by the next prune`]
    : [`the archive of ${b.host}/${b.volume} taken ${when(b.created_at)} (${b.format})`,
       `${plural(b.file_count, "file")}, ${bytes(b.stored_bytes)} stored on target ${b.target}`];
  const answer = await dialog(`Forget backup ${b.id}?`,
    h("div", {}, h("p", {}, "This cannot be undone. What will be lost:"),
      h("ul", { class: "lost" }, lost.map(t => h("li", {}, t)))),
    [["Keep it", ""], ["Forget backup", "forget", "danger"]]);
  if (answer !== "forget") return;
  await run("Forget", () => api(`/backups/${b.id}`, { method: "DELETE" }), refresh);
}

async function copy(b, refresh) {
  const targets = (await api("/targets")).filter(t => t.name !== b.target);
  if (!targets.length) {
    toast("Copy: there is no other target; an admin adds one on the targets page", true);
    return;
  }
  const to = select(targets.map(t => [t.name, `${t.name} (${t.url})`]), targets[0].name, { name: "copy-target" });
  const answer = await dialog(`Copy backup ${b.id}`,
    h("div", {}, h("p", {}, `${b.host}/${b.volume}, ${when(b.created_at)}, from ${b.target}, ${bytes(b.stored_bytes)} stored.`),
      field("To target", to)),
    [["Cancel", ""], ["Copy", "copy"]]);
  if (answer !== "copy") return;
  await run("Copy", () => api(`/backups/${b.id}/copy`, { method: "POST", body: { target: to.value } }), refresh);
}

export function actions(b, ctx, refresh) {
  if (!ctx.can("operator")) return "";
  const btn = (text, onclick, attrs = {}) =>
    h("button", { type: "button", class: "small", onclick, ...attrs }, text);
  return h("span", { class: "row-actions" },
    b.kind !== "safety" ? link(restoreHref(b), "Restore", { class: "button small" }) : null,
    btn("Tag…", () => editTags(b, refresh), { "aria-label": `Tags of backup ${b.id}` }),
    btn(b.pinned ? "Unpin" : "Pin", () => run(b.pinned ? "Unpin" : "Pin",
      () => api(`/backups/${b.id}`, { method: "PATCH", body: { pinned: !b.pinned } }), refresh),
    { "aria-label": `${b.pinned ? "Unpin" : "Pin"} backup ${b.id}` }),
    btn("Verify", () => run("Verify", () => api(`/backups/${b.id}/verify`, { method: "POST" }),
      refresh), { "aria-label": `Verify backup ${b.id}` }),
    b.kind !== "safety" ? btn("Drill", () => run("Drill", () => api("/drills", { method: "POST",
      body: { backup_id: b.id } }), refresh), {
      "aria-label": `Drill backup ${b.id}`, title: "restore into a scratch volume, compare, measure" }) : null,
    btn("Copy…", () => copy(b, refresh), { "aria-label": `Copy backup ${b.id}` }),
    // a pinned backup cannot be forgotten (the API refuses it): not offered
    ctx.can("admin") && !b.pinned ? btn("Forget…", () => forget(b, refresh), {
      class: "small danger", "aria-label": `Forget backup ${b.id}` }) : null);
}

export function timeline(rows, ctx, refresh, { withVolume = false, empty = "no backups yet" } = {}) {
  const cols = [
    ["taken", b => h("span", {}, when(b.created_at), " ", h("small", { class: "muted" }, "(", timeEl(b.created_at), ")"))],
    ...(withVolume ? [["volume", b => link(volumeHref(b), `${b.host}/${b.volume}`)]] : []),
    ["id", b => h("code", {}, b.id), { class: "wide" }],
    ["format", b => b.format],
    ["target", b => b.target, { class: "wide" }],
    // as `volkeeper backups`: size is the volume data, stored what the backup added to the
    // target (0 B for an unchanged repo backup, its data already there)
    ["size", b => bytes(b.logical_bytes)],
    ["stored", b => bytes(b.stored_bytes), { class: "wide" }],
    ["files", b => b.file_count, { class: "wide" }],
    ["tags", tags],
    ["verified", verifyState],
  ];
  if (ctx.can("operator")) cols.push(["actions", b => actions(b, ctx, refresh)]);
  return table(cols, rows, { empty, rowAttrs: b => ({ "data-backup": b.id }) });
}

export async function backupsPage(main, _params, ctx, query) {
  const f = {
    host: h("input", { type: "text", name: "host", value: query.get("host") || "" }),
    volume: h("input", { type: "text", name: "volume", value: query.get("volume") || "" }),
    target: h("input", { type: "text", name: "target", value: query.get("target") || "" }),
    tag: h("input", { type: "text", name: "tag", value: query.get("tag") || "" }),
    pinned: select([["", "any"], ["true", "pinned"], ["false", "not pinned"]], query.get("pinned") || "", { name: "pinned" }),
    kind: select([["backup", "backups"], ["safety", "safety snapshots"], ["all", "all"]], query.get("kind") || "backup", { name: "kind" }),
  };
  const out = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  // a filter matching nothing is not "no backups yet"; its names are exact, not parts
  const emptyText = () => (["host", "volume", "target", "tag", "pinned"].some(k => f[k].value) || f.kind.value !== "backup"
    ? "no backup matches these filters (host, volume, target and tag are whole names)" : "no backups yet");
  const pages = pager(PAGE, (offset, limit) => {
    const q = Object.fromEntries(Object.entries(f).map(([k, el]) => [k, el.value]));
    return api("/backups", { query: { ...q, limit, offset } });
  }, rows => fill(out, timeline(rows, ctx, () => pages.reload(), { withVolume: true, empty: emptyText() })), "backups");
  const load = () => pages.first().catch(e => fill(out, errorBox(e)));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter backups",
    onsubmit: ev => { ev.preventDefault(); load(); } },
  field("Host", f.host), field("Volume", f.volume), field("Target", f.target),
  field("Tag", f.tag), field("Pinned", f.pinned), field("Kind", f.kind),
  h("button", { type: "submit" }, "Filter"));
  for (const el of [f.pinned, f.kind]) el.addEventListener("change", load);
  fill(main, h("h1", { tabindex: -1 }, "Backups"), form, pages.el, out);
  await load();
  mark("backups");
}
