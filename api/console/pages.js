// The fleet's pages: targets (admins add and remove them, credentials go in and never come
// out), hosts (with their workers; operators refresh an inventory, admins remove an
// offline host) and the audit log
// (admins). Overview, volumes, jobs, backups, policies, keys and the restore wizard have
// modules of their own.

import { api, hasFeature } from "./api.js";
import { heading } from "./live.js";
import { badge, bytes, dialog, errorBox, field, fill, h, link, mark, plural, table, timeEl, toast,
  when } from "./ui.js";

const complain = e => toast(`${e.message}${e.hint ? " — " + e.hint : ""}`, true);

function addTargetForm(reload) {
  const f = {
    name: h("input", { type: "text", name: "target-name", required: true }),
    url: h("input", { type: "text", name: "target-url", required: true, placeholder: "s3://bucket/prefix or file:///srv/backups" }),
    endpoint: h("input", { type: "text", name: "endpoint_url", placeholder: "S3 only, e.g. https://minio:9000" }),
    key: h("input", { type: "text", name: "access_key_id", autocomplete: "off" }),
    secret: h("input", { type: "password", name: "secret_access_key", autocomplete: "new-password" }),
  };
  const status = h("div", { "aria-live": "polite" });
  return h("details", { class: "panel" }, h("summary", {}, "Add a target"),
    h("form", { "aria-label": "Add a target", onsubmit: async ev => {
      ev.preventDefault();
      fill(status);
      const credentials = f.key.value ? { access_key_id: f.key.value, secret_access_key: f.secret.value } : {};
      const options = f.endpoint.value ? { endpoint_url: f.endpoint.value } : {};
      try {
        await api("/targets", { method: "POST", body: { name: f.name.value.trim(), url: f.url.value.trim(), options, credentials } });
        toast(`Target ${f.name.value} added`);
        // an empty form again: the secret does not linger, a second press adds nothing twice
        ev.target.reset();
        ev.target.closest("details").open = false;
        await reload();
      } catch (e) { fill(status, errorBox(e, { title: "Not added" })); }
    } },
    h("div", { class: "row" }, field("Name", f.name), field("URL", f.url), field("S3 endpoint", f.endpoint),
      field("Access key id", f.key), field("Secret access key", f.secret),
      h("button", { type: "submit", class: "primary" }, "Add target")), status));
}

export async function targets(main, _params, ctx) {
  const out = h("div", {});
  const load = async () => {
    const rows = await api("/targets");
    const cols = [
      ["name", t => t.name], ["url", t => h("code", {}, t.url)],
      ["credentials", t => (t.has_credentials ? "stored" : "none")],
      ["backups", t => link(`#/backups?target=${encodeURIComponent(t.name)}`, String(t.backup_count))],
      ["stored", t => bytes(t.stored_bytes)], ["added", t => when(t.created_at)]];
    if (ctx.can("admin")) {
      // only an empty target can be removed (the API refuses the others): not offered
      cols.push(["", t => t.backup_count ? "" : h("button", { type: "button", class: "small danger", "aria-label": `Remove target ${t.name}`,
        onclick: async () => {
          const answer = await dialog(`Remove target ${t.name}?`,
            h("p", {}, `It holds no backups; policies and jobs can no longer use it (its URL and credentials are forgotten).`),
            [["Keep it", ""], ["Remove target", "remove", "danger"]]);
          if (answer !== "remove") return;
          try { await api(`/targets/${encodeURIComponent(t.name)}`, { method: "DELETE" }); await load(); } catch (e) { complain(e); }
        } }, "Remove…")]);
    }
    fill(out, table(cols, rows, { empty: "no targets" }));
  };
  fill(main, heading("Targets"), ctx.can("admin") ? addTargetForm(() => load()) : null, out);
  await load();
  mark("targets");
}

// What removing host `name` does to each policy naming it (as the API decides it): taken
// out of one naming other hosts too, a policy naming only it disabled (unless it is).
function policyPlan(policies, name) {
  return policies.filter(p => (p.hosts || []).includes(name)).flatMap(p => {
    const rest = p.hosts.filter(x => x !== name);
    if (rest.length) return [{ name: p.name, text: `the host is taken out (hosts then: ${rest.join(", ")})` }];
    return p.enabled ? [{ name: p.name, text: "disabled: it names only this host (its selection is kept)" }] : [];
  });
}

function removedReport(r) {
  const changes = (r.policies_changed || []).map(p => h("li", { "data-policy-change": p.name },
    link(`#/policies/${encodeURIComponent(p.name)}`, `Policy ${p.name}`), ": ",
    p.change === "disabled" ? "disabled (it named only this host; its selection is kept)"
      : `host taken out (hosts now: ${p.hosts.join(", ")})`));
  return h("div", { class: "panel", role: "status", "data-removed-host": r.name },
    h("p", {}, h("strong", {}, `Host ${r.name} removed`), `: ${plural(r.volumes, "volume")} forgotten, `,
      link(`#/backups?host=${encodeURIComponent(r.name)}`, `${plural(r.backups_kept, "backup")} kept`),
      " (restorable onto another host)."),
    changes.length ? h("ul", {}, changes) : null,
    r.policies && r.policies.length
      ? h("p", { class: "muted" }, `Disabled policies still naming it: ${r.policies.join(", ")}`) : null);
}

// Admins remove an offline host: the dialog says what goes, what stays and what changes
// in the policies naming it; the answer (or the refusal with its hint) stays on the page.
async function removeHost(x, status, reload) {
  let plan;
  try { plan = policyPlan(await api("/policies"), x.name); } catch (e) { fill(status, errorBox(e, { title: "Not removed" })); return; }
  const button = plan.length ? `Remove host and update ${plan.length === 1 ? "1 policy" : `${plan.length} policies`}` : "Remove host";
  const answer = await dialog(`Remove host ${x.name}?`,
    h("div", {}, h("p", {}, `Its volume inventory (${plural(x.volume_count, "volume")}) is forgotten; its backups stay in the catalog, restorable onto another host. A worker that starts again registers it again.`),
      plan.length ? [h("p", {}, "Policies naming it are changed:"),
        h("ul", { class: "policy-plan" }, plan.map(p => h("li", {}, h("strong", {}, p.name), ": ", p.text)))] : null),
    [["Keep it", ""], [button, "remove", "danger"]]);
  if (answer !== "remove") return;
  try {
    // only the changes shown are asked for: a policy naming it since makes the API refuse
    const r = await api(`/hosts/${encodeURIComponent(x.name)}`, { method: "DELETE",
      query: plan.length ? { update_policies: true } : undefined });
    fill(status, removedReport(r));
    toast(`Host ${x.name} removed`);
  } catch (e) { fill(status, errorBox(e, { title: `Host ${x.name} not removed` })); }
  await reload();
}

// After a refresh was asked for: the page again once the host's worker has sent its new
// inventory (its time and volume count), for up to 20 s.
async function refreshed(x, reload) {
  for (let i = 0; i < 40; i += 1) {
    await new Promise(resolve => setTimeout(resolve, 500));
    const now = (await api("/hosts").catch(() => [])).find(y => y.name === x.name);
    if (now && now.inventory_at !== x.inventory_at) {
      toast(`Inventory of ${x.name} refreshed: ${plural(now.volume_count, "volume")}`);
      await reload();
      return;
    }
  }
}

export async function hosts(main, _params, ctx) {
  const out = h("div", {});
  const status = h("div", { "aria-live": "polite" });
  const load = async () => {
    const [rows, health] = await Promise.all([api("/hosts"), api("/health")]);
    const workers = health.workers || {};
    const cols = [
      ["host", x => x.name], ["state", x => badge(x.online ? "online" : "offline")],
      ["worker", x => badge(workers[x.name] || "unknown")],
      ["docker", x => x.docker_version || "?"], ["version", x => x.worker_version || "?"],
      ["volumes", x => link(`#/volumes`, String(x.volume_count))],
      ["last seen", x => timeEl(x.last_seen_at)], ["inventory", x => timeEl(x.inventory_at)]];
    // evacuating needs somewhere to go: offered with a second host
    const evacuate = ctx.can("operator") && rows.length > 1 && await hasFeature("evacuations");
    if (ctx.can("operator")) {
      cols.push(["", x => [h("button", { type: "button", class: "small", "aria-label": `Refresh the inventory of ${x.name}`,
        onclick: async () => {
          try { await api(`/hosts/${encodeURIComponent(x.name)}/refresh`, { method: "POST" }); toast(`Inventory of ${x.name} requested`); } catch (e) { complain(e); return; }
          await refreshed(x, load);
        } }, "Refresh inventory"),
      evacuate ? [" ", link(`#/evacuate?host=${encodeURIComponent(x.name)}`, "Evacuate…",
        { class: "button small", "aria-label": `Evacuate ${x.name}` })] : null,
      // an online host is refused (its worker runs): offered once it is offline
      ctx.can("admin") && !x.online ? [" ", h("button", { type: "button", class: "small danger",
        "aria-label": `Remove host ${x.name}`, onclick: () => removeHost(x, status, load) }, "Remove…")] : null]]);
    }
    const checks = health.checks || {};
    fill(out, h("p", {}, "Status ", badge(health.status || "?"), " · database ", checks.database || "?",
      " · Redis ", checks.redis || "?", " · scheduler ", checks.scheduler || "?", " · mode ", health.mode || "?"),
    table(cols, rows, { empty: "no hosts have registered", rowAttrs: x => ({ "data-host": x.name }) }));
  };
  fill(main, heading("Hosts"), status, out);
  await load();
  mark("hosts");
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
    const rows = await api("/audit", { query: { actor: f.actor.value, action: f.action.value, since, limit: 200 } });
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
  mark("audit");
}
