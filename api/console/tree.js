// A browsable tree of a backup's files (GET /backups/{id}/tree, one directory level per
// request, read by a worker): directories open on demand, and each entry has a checkbox
// — a checked directory brings everything below it. `chosen` (a Set of volume-relative
// paths) is kept up to date; `onChange` runs after each change.

import { api } from "./api.js";
import { bytes, errorBox, fill, h, when } from "./ui.js";

export function pathTree(backupId, chosen, onChange) {
  const root = h("ul", { class: "tree", "aria-label": "Files in the backup" });
  const load = async (ul, path) => {
    fill(ul, h("li", { class: "muted" }, "Loading…"));
    try {
      const r = await api(`/backups/${encodeURIComponent(backupId)}/tree`, { query: { path } });
      fill(ul, r.entries.length ? r.entries.map(e => item(e, path ? `${path}/${e.name}` : e.name))
        : h("li", { class: "muted" }, "empty directory"),
      r.more ? h("li", { class: "muted" }, `${r.more} more entries not shown: type their paths instead`) : null);
    } catch (e) { fill(ul, h("li", {}, errorBox(e, { title: "Cannot list this directory" }))); }
  };
  const item = (e, full) => {
    const box = h("input", { type: "checkbox", name: "path", value: full, checked: chosen.has(full) });
    box.addEventListener("change", () => {
      if (box.checked) chosen.add(full); else chosen.delete(full);
      onChange();
    });
    const label = h("label", { title: e.mtime ? `modified ${when(new Date(e.mtime * 1000).toISOString())}` : null },
      box, " ", e.name + (e.type === "dir" ? "/" : ""),
      e.type === "dir" ? null : h("small", { class: "muted" }, e.type === "file" ? ` ${bytes(e.size)}` : ` ${e.type}`));
    if (e.type !== "dir") return h("li", { "data-path": full }, h("span", { class: "tree-spacer" }), label);
    const sub = h("ul", { hidden: true });
    let loaded = false;
    const toggle = h("button", { type: "button", class: "link tree-toggle", "aria-expanded": "false",
      "aria-label": `Open ${full}` }, "▸");
    toggle.addEventListener("click", async () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.setAttribute("aria-label", `${open ? "Close" : "Open"} ${full}`);
      toggle.textContent = open ? "▾" : "▸";
      sub.hidden = !open;
      if (open && !loaded) { loaded = true; await load(sub, full); }
    });
    return h("li", { "data-path": full }, toggle, label, sub);
  };
  load(root, "");
  return root;
}
