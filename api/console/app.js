// The shell: who is logged in (their role decides what is offered), the hash router and
// the navigation. A page is a function (main, params, ctx) that fills `main` and may
// return a cleanup function (closing its event streams and timers) run on leaving it.

import { api, hasFeature } from "./api.js";
import { errorBox, fill, h } from "./ui.js";
import { backupsPage } from "./backups.js";
import { evacuate, evacuation, evacuations } from "./evacuations.js";
import { job, jobs } from "./jobs.js";
import { keys } from "./keys.js";
import { migrateWizard } from "./migrate.js";
import { migration, migrations } from "./migrations.js";
import { overview } from "./overview.js";
import { audit, hosts, targets } from "./pages.js";
import { policies, policyForm } from "./policies.js";
import { volume, volumes } from "./volumes.js";
import { restoreWizard } from "./wizard.js";

const RANK = { viewer: 0, operator: 1, admin: 2 };

const routes = [
  [/^\/?$/, overview],
  [/^\/volumes$/, volumes],
  [/^\/volumes\/([^/]+)\/([^/]+)$/, volume],
  [/^\/restore$/, restoreWizard],
  [/^\/backups$/, backupsPage],
  [/^\/jobs$/, jobs],
  [/^\/jobs\/([^/]+)$/, job],
  [/^\/policies$/, policies],
  [/^\/policies\/([^/]+)$/, policyForm],
  [/^\/targets$/, targets],
  [/^\/keys$/, keys],
  [/^\/hosts$/, hosts],
  [/^\/audit$/, audit],
  [/^\/migrate$/, migrateWizard],
  [/^\/migrations$/, migrations],
  [/^\/migrations\/([^/]+)$/, migration],
  [/^\/evacuate$/, evacuate],
  [/^\/evacuations$/, evacuations],
  [/^\/evacuations\/([^/]+)$/, evacuation],
];

let cleanup = null;
let ctx = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { path, query: new URLSearchParams(query || "") };
}

// Each render draws into a view of its own, put in <main> at once: a page still loading
// when the next one starts writes into its own view, which is no longer shown (and its
// cleanup runs as soon as it returns).
let current = 0;

async function render() {
  if (cleanup) { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
  const mine = ++current;
  const main = document.getElementById("main");
  delete main.dataset.ready;  // set again by the page when its data is drawn (ui.mark)
  const view = h("div", { class: "view" }, h("p", { class: "muted" }, "Loading…"));
  fill(main, view);
  const { path, query } = parseHash();
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href").slice(1);
    const here = target === "/" ? path === "/" || path === "" : path.startsWith(target);
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const route = routes.find(([re]) => re.test(path));
  if (!route) {
    fill(view, h("h1", {}, "Not found"), h("p", {}, "No such page. "),
      h("a", { href: "#/" }, "Back to the overview"));
    return;
  }
  const params = path.match(route[0]).slice(1).map(decodeURIComponent);
  let out = null;
  try {
    out = await route[1](view, params, ctx, query);
  } catch (e) {
    fill(view, errorBox(e, { title: "Could not load this page" }));
  }
  if (mine !== current) {  // left while it loaded
    if (typeof out === "function") out();
    return;
  }
  if (typeof out === "function") cleanup = out;
  // a new page: focus its heading (screen readers announce it), unless the page put
  // the focus on a control of its own (the volumes search)
  const heading = view.querySelector("h1");
  if (heading && !view.contains(document.activeElement)) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  document.title = (heading ? heading.textContent + " · " : "") + "volkeeper";
}

async function start() {
  hasFeature("cancel");  // read the server's API list while the role is asked for
  try {
    const me = await api("/whoami");
    ctx = {
      name: me.name,
      role: me.role,
      can: role => RANK[me.role] >= RANK[role],
    };
  } catch (e) {
    document.getElementById("main").replaceChildren(errorBox(e));
    return;
  }
  document.getElementById("who").textContent = `${ctx.name} (${ctx.role})`;
  for (const a of document.querySelectorAll("#nav [data-role]")) {
    if (!ctx.can(a.dataset.role)) a.parentElement.remove();
  }
  // "Skip to content" moves the focus only: its #main would be a route (Not found)
  document.querySelector("a.skip").addEventListener("click", ev => {
    ev.preventDefault();
    document.getElementById("main").focus();
  });
  window.addEventListener("hashchange", render);
  const first = render();
  // optional APIs (landing on other branches): their links stay hidden unless present
  for (const a of document.querySelectorAll("#nav [data-feature]")) {
    if (await hasFeature(a.dataset.feature)) a.parentElement.hidden = false;
  }
  await first;
}

start();
