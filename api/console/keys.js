// Keys: the API tokens (admins: create with a role — the secret shown once — and revoke)
// and the passphrase key files of a target's native repository (operators list them
// through a job on a worker; admins add a passphrase or remove a key file).

import { api, followJob } from "./api.js";
import { heading } from "./live.js";
import { badge, dialog, errorBox, field, fill, h, mark, select, table, toast, when } from "./ui.js";

const complain = e => toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true);

// Run a target's key job and resolve with the finished job.
function keyJob(path, init) {
  return api(path, init).then(job => new Promise(resolve => {
    followJob(job.id, { onEnd: resolve });
  }));
}

async function tokensSection(box) {
  const load = async () => {
    const rows = await api("/tokens");
    fill(list, table([
      ["name", t => t.name], ["role", t => t.role], ["created", t => `${when(t.created_at)} by ${t.created_by || "?"}`],
      ["last used", t => when(t.last_used_at)],
      ["state", t => (t.revoked_at ? badge(`revoked ${when(t.revoked_at)}`) : badge("ok"))],
      ["", t => (t.revoked_at ? "" : h("button", { type: "button", class: "small danger", "aria-label": `Revoke token ${t.name}`,
        onclick: async () => {
          const answer = await dialog(`Revoke token ${t.name}?`, h("p", {}, `Whatever uses it (${t.role}) stops working at once; this cannot be undone.`),
            [["Keep it", ""], ["Revoke token", "revoke", "danger"]]);
          if (answer !== "revoke") return;
          try { await api(`/tokens/${encodeURIComponent(t.name)}`, { method: "DELETE" }); await load(); } catch (e) { complain(e); }
        } }, "Revoke…"))],
    ], rows, { empty: "no named tokens" }));
  };
  const list = h("div", {});
  const name = h("input", { type: "text", name: "token-name", required: true });
  const role = select(["viewer", "operator", "admin"], "viewer", { name: "token-role" });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "row", "aria-label": "Create a token", onsubmit: async ev => {
    ev.preventDefault();
    fill(status);
    try {
      const t = await api("/tokens", { method: "POST", body: { name: name.value.trim(), role: role.value } });
      await dialog(`Token ${t.name} (${t.role})`, h("div", {}, h("p", {}, "Copy it now: it is not shown again."),
        h("code", { class: "secret" }, t.secret)), [["Done", "ok"]]);
      name.value = "";
      await load();
    } catch (e) { fill(status, errorBox(e, { title: "Not created" })); }
  } }, field("Name", name), field("Role", role), h("button", { type: "submit", class: "primary" }, "Create token"));
  fill(box, h("h2", { id: "tokens-h" }, "API tokens"), form, status, list);
  await load();
}

function repoKeysSection(box, targets, ctx) {
  const target = select(targets.map(t => t.name), targets[0] ? targets[0].name : "", { name: "key-target" });
  const out = h("div", { "aria-live": "polite" });
  const base = () => `/targets/${encodeURIComponent(target.value)}`;
  const list = async () => {
    fill(out, h("p", { class: "muted" }, "Asking a worker…"));
    const job = await keyJob(`${base()}/keys/list`, { method: "POST", body: {} });
    if (job.state !== "succeeded") { fill(out, errorBox(job.error || job.state, { title: "Could not list the keys" })); return; }
    const cols = [["key file", k => h("code", {}, k.id)], ["created", k => when(k.created)],
      ["on host", k => k.hostname || "?"], ["used by the workers", k => (k.in_use ? "yes" : "")]];
    if (ctx.can("admin")) {
      cols.push(["", k => (k.in_use || job.result.keys.length < 2 ? "" : h("button", { type: "button", class: "small danger",
        "aria-label": `Remove key ${k.id}`, onclick: async () => {
          const answer = await dialog("Remove this key file?", h("p", {}, `The passphrase of key ${k.id} stops opening the repository on ${target.value}.`),
            [["Keep it", ""], ["Remove key", "remove", "danger"]]);
          if (answer !== "remove") return;
          const done = await keyJob(`${base()}/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" })
            .catch(e => { complain(e); return null; });
          if (done && done.state !== "succeeded") complain({ message: done.error || done.state });
          else if (done) toast(`Key ${k.id} removed`);
          await list();
        } }, "Remove…"))]);
    }
    fill(out, table(cols, job.result.keys, { empty: "no key files (an unencrypted repository)" }));
  };
  const pass = h("input", { type: "password", name: "new-passphrase", autocomplete: "new-password" });
  const add = ctx.can("admin") ? h("form", { class: "row", "aria-label": "Add a passphrase", onsubmit: async ev => {
    ev.preventDefault();
    const done = await keyJob(`${base()}/keys`, { method: "POST", body: { new_password: pass.value } }).catch(e => { complain(e); return null; });
    pass.value = "";
    if (done && done.state !== "succeeded") complain({ message: done.error || done.state });
    else if (done) { toast(`Key ${done.result.added} added`); await list(); }
  } }, field("New passphrase", pass), h("button", { type: "submit" }, "Add passphrase")) : null;
  fill(box, h("h2", { id: "repo-keys-h" }, "Repository keys"),
    h("div", { class: "row" }, field("Target", target),
      h("button", { type: "button", onclick: () => list().catch(e => fill(out, errorBox(e))) }, "List key files")),
    add, out);
}

export async function keys(main, _params, ctx) {
  if (!ctx.can("operator")) {
    fill(main, heading("Keys"), h("p", {}, "Keys are for operators (repository keys) and admins (API tokens)."));
    return;
  }
  const targets = await api("/targets");
  const tokens = h("section", { "aria-labelledby": "tokens-h" });
  const repo = h("section", { "aria-labelledby": "repo-keys-h" });
  fill(main, heading("Keys"), ctx.can("admin") ? tokens : null, repo);
  repoKeysSection(repo, targets, ctx);
  if (ctx.can("admin")) await tokensSection(tokens);
  mark("keys");
}
