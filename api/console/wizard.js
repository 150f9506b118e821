// The restore wizard: volume → version → where → what (the whole volume or paths chosen
// from a browsable tree of the backup) → dry-run validation (check by check) → confirm →
// live progress → result (with a rollback after a replace). Every step is one
// view of a plain state object; the API's validate/restore/rollback do the work and
// their role checks stay the only ones (replace is offered to admins only).

import { api, followJob } from "./api.js";
import { tags, verifyState } from "./backups.js";
import { resultView } from "./jobs.js";
import { pathTree } from "./tree.js";
import { badge, bytes, confirmRollback, errorBox, field, fill, h, link, mark, plainCheck, plural, progressView, select,
  volumeState, when }
  from "./ui.js";

const STEPS = ["Volume", "Version", "Where", "What", "Check", "Confirm", "Restore"];

function stamp() {
  const d = new Date();
  const p = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

export async function restoreWizard(main, _params, ctx, query) {
  if (!ctx.can("operator")) {
    fill(main, h("h1", { tabindex: -1 }, "Restore"),
      h("p", {}, "Restoring needs the operator role; this token is a viewer."));
    return;
  }
  const st = {
    step: 0, host: query.get("host") || "", volume: query.get("volume") || "",
    backupId: query.get("backup") || "", backups: [], where: "new", into: "",
    otherHost: "", otherInto: "", stop: false, whole: true, chosen: new Set(), treeOf: "",
    validation: null, job: null,
  };
  let stop = () => {};
  // what can be restored: every volume with backups (also those removed from their
  // host since), in one grouped read
  const [backedUp, hosts] = await Promise.all([api("/backups/volumes"), api("/hosts")]);
  const groups = new Map(backedUp.map(g => [`${g.host}/${g.volume}`,
    { host: g.host, volume: g.volume, count: g.backups, newest: g.newest_at }]));

  const stepper = () => h("ol", { class: "stepper", "aria-label": "Restore steps" },
    STEPS.map((s, i) => h("li", { class: i < st.step ? "done" : "", "aria-current": i === st.step ? "step" : null }, s)));
  const nav = (back, next, nextLabel = "Next", nextAttrs = {}) => h("div", { class: "actions" },
    back ? h("button", { type: "button", onclick: back }, "Back") : null,
    next ? h("button", { type: "submit", class: "primary", ...nextAttrs }, nextLabel) : null);
  const show = (title, body, onsubmit) => {
    const form = h("form", { class: "wizard", "aria-labelledby": "wizard-h",
      onsubmit: ev => { ev.preventDefault(); onsubmit && onsubmit(); } },
    h("h2", { id: "wizard-h", tabindex: -1 }, title), body);
    fill(main, h("h1", {}, "Restore"), stepper(), form);
    form.querySelector("h2").focus();
  };
  const go = async step => {
    st.step = step;
    try {
      await VIEWS[step]();
    } catch (e) {  // a read that failed (the server went away, the session ended…)
      show("This step could not load", h("div", {}, errorBox(e),
        nav(step ? () => go(step - 1) : null, null)));
    }
  };
  const backup = () => st.backups.find(b => b.id === st.backupId);
  const back = () => (st.where === "replace" ? 2 : 3);  // the step before the check
  const body = () => {
    const b = backup();
    const out = { backup_id: b.id };
    if (st.where === "new") out.into = st.into;
    else if (st.where === "same") { out.into = b.volume; out.host = b.host; }
    else if (st.where === "other") { out.into = st.otherInto; out.host = st.otherHost; }
    else { out.into = b.volume; out.host = b.host; out.mode = "replace"; out.stop_containers = st.stop; }
    if (!st.whole && st.chosen.size && st.where !== "replace") out.paths = [...st.chosen].sort();
    return out;
  };
  const whereText = () => {
    const b = backup();
    return {
      new: `into a new volume ${st.into} on ${b.host}`,
      same: `into ${b.volume} on ${b.host} (missing or empty)`,
      other: `into ${st.otherInto} on host ${st.otherHost}`,
      replace: `over the current content of ${b.volume} on ${b.host}, after a safety snapshot`,
    }[st.where];
  };

  const VIEWS = [
    // 0: volume
    async () => {
      const keys = [...groups.keys()].sort();
      const label = g => `${g.host}/${g.volume} — ${plural(g.count, "backup")}, newest ${when(g.newest)}`;
      const sel = select(keys.map(k => [k, label(groups.get(k))]),
        st.host ? `${st.host}/${st.volume}` : keys[0], { name: "volume", size: Math.min(Math.max(keys.length, 2), 10) });
      show("Which volume?", keys.length
        ? h("div", {}, field("Volume (host/name)", sel), nav(null, true))
        : h("p", {}, "No backups yet: back a volume up first."), async () => {
        const g = groups.get(sel.value);
        if (g.host !== st.host || g.volume !== st.volume) st.backupId = "";
        st.host = g.host; st.volume = g.volume;
        await go(1);
      });
    },
    // 1: version
    async () => {
      st.backups = await api("/backups", { query: { host: st.host, volume: st.volume, limit: 500 } });
      if (!st.backups.some(b => b.id === st.backupId)) st.backupId = st.backups[0] ? st.backups[0].id : "";
      const radios = st.backups.map(b => h("label", { class: "version" },
        h("input", { type: "radio", name: "version", value: b.id, checked: b.id === st.backupId }),
        h("span", { class: "when" }, when(b.created_at)),
        h("span", {}, `${b.format} on ${b.target}`), h("span", {}, bytes(b.logical_bytes)),
        h("span", {}, `${b.file_count} files`), tags(b), verifyState(b), h("code", { class: "muted" }, b.id)));
      show(`Which version of ${st.host}/${st.volume}?`, h("div", {},
        h("fieldset", { class: "timeline" }, h("legend", {}, "Backups, newest first"), radios),
        nav(() => go(0), true)), async () => {
        const chosen = main.querySelector("input[name=version]:checked");
        if (!chosen) return;
        st.backupId = chosen.value;
        if (!st.into) st.into = `${st.volume}-restored-${stamp()}`;
        await go(2);
      });
    },
    // 2: where
    async () => {
      const b = backup();
      const others = hosts.filter(x => x.name !== b.host && x.online);
      const into = h("input", { type: "text", name: "into", value: st.into, required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*" });
      const otherInto = h("input", { type: "text", name: "other-into", value: st.otherInto || st.volume });
      const otherHost = select(others.map(x => x.name), st.otherHost || (others[0] && others[0].name), { name: "other-host" });
      const stopBox = h("input", { type: "checkbox", name: "stop", checked: st.stop });
      const option = (value, title, text, extra, disabled) => h("div", { class: "option" + (disabled ? " disabled" : "") },
        h("label", {}, h("input", { type: "radio", name: "where", value, checked: st.where === value, disabled }),
          " ", h("strong", {}, title)), h("p", { class: "muted" }, text), extra);
      show("Where to?", h("div", {},
        h("fieldset", {}, h("legend", {}, `Restore ${b.id} (${when(b.created_at)})`),
          option("new", "A new volume", `on ${b.host}; nothing existing is touched`, field("New volume name", into)),
          option("same", `The same volume, ${b.volume}`, "only if it no longer exists or is empty (the check says)"),
          option("other", "Another host", others.length ? "a volume on another online host"
            : "no other host is online", others.length ? h("div", { class: "row" }, field("Host", otherHost), field("Volume name", otherInto)) : null, !others.length),
          ctx.can("admin") ? option("replace", `Replace ${b.volume}'s content`,
            "a safety snapshot of the current content is taken first; the replace is verified, rolled back automatically on failure, and can be rolled back afterwards",
            h("label", { class: "check" }, stopBox, " stop the containers using it (restarted afterwards)")) : null),
        nav(() => go(1), true)), async () => {
        st.where = (main.querySelector("input[name=where]:checked") || { value: "new" }).value;
        st.into = into.value.trim();
        st.otherInto = otherInto.value.trim();
        st.otherHost = otherHost.value;
        st.stop = stopBox.checked;
        await go(st.where === "replace" ? 4 : 3);  // a replace restores the whole volume
      });
    },
    // 3: what
    async () => {
      const b = backup();
      if (st.treeOf !== b.id) { st.treeOf = b.id; st.chosen = new Set(); }
      const count = h("p", { class: "muted", "aria-live": "polite" });
      const typed = h("input", { type: "text", name: "typed-path", placeholder: "e.g. db/base" });
      const tree = pathTree(b.id, st.chosen, () => { draw(); });
      const chooser = h("div", { class: "chooser" }, tree,
        h("div", { class: "row" }, field("Or type a path", typed),
          h("button", { type: "button", onclick: () => {
            const p = typed.value.trim().replace(/^\/+|\/+$/g, "");
            if (p) { st.chosen.add(p); typed.value = ""; draw(); }
          } }, "Add path")), count);
      const draw = () => {
        count.textContent = st.chosen.size ? `chosen: ${[...st.chosen].sort().join(", ")}` : "nothing chosen yet";
        chooser.hidden = st.whole;
      };
      const radio = (value, text) => h("label", { class: "check" },
        h("input", { type: "radio", name: "what", value, checked: st.whole === (value === "whole"),
          onchange: () => { st.whole = value === "whole"; draw(); } }), " ", text);
      show("What to restore?", h("div", {},
        h("fieldset", {}, h("legend", {}, `From ${b.id} (${when(b.created_at)})`),
          radio("whole", `The whole volume (${bytes(b.logical_bytes)}, ${plural(b.file_count, "file")})`),
          radio("paths", "Chosen files and directories (a directory brings everything below it)"),
          chooser),
        nav(() => go(2), true, "Check")), async () => {
        if (!st.whole && !st.chosen.size) {
          count.textContent = "choose at least one path, or the whole volume";
          return;
        }
        await go(4);
      });
      draw();
    },
    // 4: dry run
    async () => {
      show("Checking (dry run on the target host)…", h("p", { class: "muted", "aria-live": "polite" }, "Running the restore's checks without changing anything…"));
      let v;
      try {
        v = await api("/restores/validate", { method: "POST", body: body() });
      } catch (e) {
        show("The check could not run", h("div", {}, errorBox(e), nav(() => go(back()), null)));
        return;
      }
      st.validation = v;
      show(v.ok ? "All checks passed" : "Some checks failed", h("div", {},
        h("p", {}, plainCheck(v.plan)),
        h("ul", { class: "checks", "aria-label": "Checks" }, v.checks.map(c => h("li", { class: c.ok ? "ok" : "bad" },
          h("span", { "aria-hidden": "true" }, c.ok ? "✓ " : "✗ "), h("strong", {}, c.name), ": ", plainCheck(c.detail),
          h("span", { class: "sr-only" }, c.ok ? " (passed)" : " (failed)")))),
        h("p", { class: "muted" }, `${bytes(v.restore_bytes)} to write; ${v.free_bytes == null ? "free space unknown" : bytes(v.free_bytes) + " free"}; target volume ${volumeState(v.volume_state)}`),
        v.ok ? null : h("p", { class: "bad" }, "Go back and choose another place, or fix what failed and check again."),
        nav(() => go(back()), v.ok, "Continue")), () => go(5));
    },
    // 5: confirm
    async () => {
      const b = backup();
      const replace = st.where === "replace";
      const ack = h("input", { type: "checkbox", name: "ack", required: true });
      show("Confirm", h("div", {},
        h("dl", { class: "facts" },
          h("dt", {}, "backup"), h("dd", {}, `${b.id}, ${b.host}/${b.volume}, ${when(b.created_at)}`),
          h("dt", {}, "restore"), h("dd", {}, whereText()),
          h("dt", {}, "what"), h("dd", {}, body().paths ? body().paths.join(", ") : "the whole volume"),
          h("dt", {}, "size"), h("dd", {}, body().paths
            ? `${bytes(st.validation.restore_bytes)} in the chosen paths (the whole backup: ${bytes(b.logical_bytes)}, ${plural(b.file_count, "file")})`
            : `${bytes(b.logical_bytes)}, ${plural(b.file_count, "file")}`),
          st.validation.stopping.length ? [h("dt", {}, "stops"), h("dd", {}, st.validation.stopping.join(", "))] : null),
        replace ? h("label", { class: "check warn" }, ack, ` I understand that ${b.volume}'s current content is replaced (a safety snapshot keeps it for rollback)`) : null,
        nav(() => go(4), true, replace ? "Replace now" : "Start restore", { class: replace ? "danger" : "primary" })), async () => {
        try {
          st.job = await api("/restores", { method: "POST", body: body() });
        } catch (e) {
          main.querySelector("form").append(errorBox(e));
          return;
        }
        await go(6);
      });
    },
    // 6: progress, then the result
    async () => {
      const view = progressView("restore progress");
      const result = h("div", { "aria-live": "polite" });
      show(`Restoring ${whereText()}`, h("div", {}, view.el,
        h("p", {}, "Job ", link(`#/jobs/${st.job.id}`, st.job.id)), result));
      view.set(st.job.progress, st.job.state);
      stop = followJob(st.job.id, {
        onProgress: p => view.set(p, "running"),
        onEnd: j => { view.set(j.progress, j.state); finished(j, result); },
      });
    },
  ];

  const finished = (j, box) => {
    const ok = j.state === "succeeded";
    const heading = main.querySelector("#wizard-h");
    heading.textContent = ok ? "Restored" : "The restore failed";
    const rollbackBox = h("div", { "aria-live": "polite" });
    const rollback = ok && j.params.mode === "replace" && j.result.safety_backup_id && ctx.can("admin")
      ? h("button", { type: "button", class: "danger", onclick: async ev => {
        const button = ev.target;
        if (!await confirmRollback(j)) return;
        button.disabled = true;
        try {
          const rb = await api(`/restores/${j.id}/rollback`, { method: "POST" });
          const view = progressView("rollback progress");
          const out = h("div", {});
          fill(rollbackBox, h("h3", {}, "Rolling back"), view.el,
            h("p", {}, "Job ", link(`#/jobs/${rb.id}`, rb.id)), out);
          stop = followJob(rb.id, {
            onProgress: p => view.set(p, "running"),
            onEnd: done => {
              view.set(done.progress, done.state);
              fill(out, done.state === "succeeded"
                ? h("p", { class: "ok" }, "Rolled back: the volume holds its content from before the replace again.")
                : errorBox(done.error, { title: "The rollback failed" }));
            },
          });
        } catch (e) {
          button.disabled = false;
          fill(rollbackBox, errorBox(e));
        }
      } }, "Roll back") : null;
    fill(box, 
      ok ? h("p", { class: "ok" }, badge("succeeded"), ` ${j.host}/${j.volume} restored from ${j.backup_id}.`)
        : errorBox(j.error, { title: "The restore failed" }),
      resultView(j),
      h("div", { class: "actions" },
        link(`#/volumes/${encodeURIComponent(j.host)}/${encodeURIComponent(j.volume)}`, "Open the volume", { class: "button" }),
        rollback),
      rollback ? h("p", { class: "muted" }, `The safety snapshot ${j.result.safety_backup_id} keeps the content from before the replace until it expires.`) : null,
      rollbackBox);
  };

  if (st.host && st.volume && groups.has(`${st.host}/${st.volume}`)) await go(1);
  else await go(0);
  mark("restore");
  return () => stop();
}
