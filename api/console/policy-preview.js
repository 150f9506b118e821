// The retention preview of a policy form: per selected volume and target, how many
// backups are kept and forgotten, and each one's reasons (POST /policies/preview-retention;
// nothing changes).

import { api } from "./api.js";
import { errorBox, fill, h, plural, table, when } from "./ui.js";

export async function retentionPreview(box, body) {
  fill(box, h("p", { class: "muted" }, "Previewing…"));
  let groups;
  try {
    groups = await api("/policies/preview-retention", { method: "POST", body });
  } catch (e) {
    fill(box, errorBox(e, { title: "No preview" }));
    return;
  }
  if (!groups.length) {
    fill(box, h("p", { class: "muted" }, "The selection matches no volume now."));
    return;
  }
  const forget = groups.reduce((n, g) => n + g.forget, 0);
  fill(box, h("p", { class: forget ? "warn" : "" },
    `Applied now: ${plural(forget, "backup")} would be forgotten over ${plural(groups.length, "volume/target")}.`),
  table([
    ["volume", g => `${g.host}/${g.volume}`], ["target", g => g.target],
    ["kept", g => g.keep], ["forgotten", g => g.forget],
    ["would forget", g => {
      const lost = g.backups.filter(b => !b.keep);
      if (!lost.length) return h("span", { class: "muted" }, "nothing");
      return h("details", {}, h("summary", {}, plural(lost.length, "backup")),
        h("ul", {}, lost.map(b => h("li", {}, `${when(b.created_at)} `, h("code", {}, b.id)))));
    }],
  ], groups, { caption: "Retention preview", rowAttrs: g => ({ "data-preview": `${g.host}/${g.volume}/${g.target}` }) }));
}
