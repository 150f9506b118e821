// Small building blocks: elements, formats, tables, progress bars, dialogs, messages.
// Everything is built with DOM nodes and textContent (never innerHTML with data).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replace an element's children (null, false and undefined are left out, arrays flattened).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const link = (href, text, attrs = {}) => h("a", { href, ...attrs }, text);

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export const parseTime = t => (t ? new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : t + "Z") : null);

export function when(t) {
  const d = parseTime(t);
  if (!d) return "never";
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function age(t) {
  const d = parseTime(t);
  if (!d) return "never";
  return duration((Date.now() - d.getTime()) / 1000) + " ago";
}

export const timeEl = t => (t ? h("time", { datetime: t, title: when(t) }, age(t)) : "never");

// "message (hint)" is how a job records an error: split off the last balanced (…) part.
export function splitError(text) {
  if (!text || !text.endsWith(")")) return { message: text || "", hint: "" };
  let depth = 0;
  for (let i = text.length - 1; i >= 0; i -= 1) {
    if (text[i] === ")") depth += 1;
    else if (text[i] === "(") {
      depth -= 1;
      if (depth === 0) {
        if (i === 0 || text[i - 1] !== " ") break;
        return { message: text.slice(0, i - 1), hint: text.slice(i + 1, -1) };
      }
    }
  }
  return { message: text, hint: "" };
}

export function errorBox(err, { title = "Error" } = {}) {
  const { message, hint } = typeof err === "string" ? splitError(err)
    : { message: err.message, hint: err.hint || "" };
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, title + ": "), h("span", { class: "error-message" }, message),
    hint ? h("p", { class: "hint" }, h("strong", {}, "What to do: "), hint) : null);
}

export function badge(state) {
  const cls = { succeeded: "ok", ok: "ok", passed: "ok", online: "ok", failed: "bad", damaged: "bad",
                offline: "bad", running: "run", queued: "run" }[String(state).split(" ")[0]] || "";
  return h("span", { class: "badge " + cls }, state);
}

// cols: [[header, row => cell, {class}?], …]
export function table(cols, rows, { caption, empty = "none", rowAttrs } = {}) {
  const head = h("tr", {}, cols.map(([name, , opts]) =>
    h("th", { scope: "col", class: opts && opts.class }, name)));
  const body = rows.length
    ? rows.map(r => h("tr", rowAttrs ? rowAttrs(r) : {},
        cols.map(([, cell, opts]) => h("td", opts || {}, cell(r)))))
    : [h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, empty))];
  return h("div", { class: "table-wrap" },
    h("table", {}, caption ? h("caption", {}, caption) : null,
      h("thead", {}, head), h("tbody", {}, body)));
}

// A live progress view: a <progress> bar plus bytes, files, rate and ETA. The element
// carries the shown snapshot's `updated_at` (the worker's clock, s) as data-updated-at; a
// snapshot older than the shown one (a poll racing the event stream) is skipped while
// the job runs.
export function progressView(label) {
  const bar = h("progress", { max: 100, "aria-label": label });
  const pct = h("span", { class: "pct" }, "");
  const phase = h("span", { class: "phase" }, "waiting");
  const detail = h("span", { class: "detail muted" }, "");
  const el = h("div", { class: "progress" }, h("div", { class: "bar-line" }, bar, pct),
    h("div", { class: "progress-text" }, phase, " ", detail));
  let shown = 0;
  const set = (p, state) => {
    p = p || {};
    const stamp = Number(p.updated_at) || 0;
    if (stamp && stamp < shown && (!state || state === "running" || state === "queued")) return;
    if (stamp) { shown = stamp; el.dataset.updatedAt = String(stamp); }
    let percent = p.percent;
    if (state === "succeeded") percent = 100;
    if (percent === null || percent === undefined) {
      if (state && state !== "running" && state !== "queued") bar.value = 0;
      else bar.removeAttribute("value");  // indeterminate while it works
      pct.textContent = "";
    } else {
      bar.value = percent;
      pct.textContent = `${Math.floor(percent)} %`;
    }
    phase.textContent = state && state !== "running" ? `${p.phase || ""} · ${state}` : (p.phase || "");
    const parts = [];
    if (p.bytes_done !== undefined) {
      parts.push(p.bytes_total ? `${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}` : bytes(p.bytes_done));
    }
    if (p.files_done !== undefined) {
      parts.push(p.files_total ? `${p.files_done} of ${p.files_total} files` : `${p.files_done} files`);
    }
    if (p.rate_bytes_per_s) parts.push(`${bytes(p.rate_bytes_per_s)}/s`);
    if (p.eta_seconds !== null && p.eta_seconds !== undefined && state !== "succeeded") {
      parts.push(`ETA ${duration(p.eta_seconds)}`);
    }
    if (p.message) parts.push(p.message);
    detail.textContent = parts.join(" · ");
  };
  return { el, set };
}

// A modal dialog; resolves with the value of the button pressed (or "" on Escape).
export function dialog(title, body, buttons = [["Cancel", ""], ["OK", "ok"]]) {
  return new Promise(resolve => {
    // a button without a value (Cancel, Keep it) only closes: Enter in a field submits
    // the dialog's action, not the first button in the form
    const form = h("form", { method: "dialog" },
      h("h2", {}, title), body,
      h("div", { class: "actions" }, buttons.map(([text, value, cls]) => value
        ? h("button", { value, class: cls || "primary" }, text)
        : h("button", { type: "button", onclick: () => dlg.close("") }, text))));
    const dlg = h("dialog", { "aria-label": title }, form);
    document.body.append(dlg);
    dlg.addEventListener("close", () => { resolve(dlg.returnValue); dlg.remove(); });
    dlg.showModal();
  });
}

export function toast(text, bad = false) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.className = ""; }, 5000);
}

export function field(label, control, help) {
  const id = control.id || "f-" + Math.random().toString(36).slice(2, 9);
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    help ? h("small", { class: "muted" }, help) : null);
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(o => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: v === value }, text);
  }));
}

// Pages of a list the API serves newest first (limit/offset): `draw(rows)` shows a page,
// the Newer/Older buttons move by `size` rows. `load(offset, size)` fetches one page.
export function pager(size, load, draw, noun = "rows") {
  let offset = 0;
  const info = h("span", { class: "muted" });
  const newer = h("button", { type: "button", class: "small", onclick: () => go(offset - size) }, "Newer");
  const older = h("button", { type: "button", class: "small", onclick: () => go(offset + size) }, "Older");
  const el = h("div", { class: "pager", role: "navigation", "aria-label": `Pages of ${noun}` }, newer, info, older);
  const go = async at => {
    offset = Math.max(0, at);
    const rows = await load(offset, size);
    newer.disabled = offset === 0;
    older.disabled = rows.length < size;
    info.textContent = rows.length ? `${noun} ${offset + 1}–${offset + rows.length}` : `no ${noun}`;
    draw(rows);
  };
  return { el, go, reload: () => go(offset), first: () => go(0) };
}

// "This page shows its data": a performance mark (the speed benchmark reads
// `volkeeper:<page>` marks) and data-ready on <main>, once per page view.
export function mark(page) {
  const main = document.getElementById("main");
  if (main.dataset.ready === page) return;
  main.dataset.ready = page;
  performance.mark(`volkeeper:${page}`);
}

// Before a replace-restore is rolled back: what comes back and what is lost.
export async function confirmRollback(j) {
  const answer = await dialog(`Roll back the replace of ${j.host}/${j.volume}?`,
    h("p", {}, `The volume gets its content from before the replace back (its safety snapshot); anything written to it since the restore is lost.`),
    [["Keep it", ""], ["Roll back", "rollback", "danger"]]);
  return answer === "rollback";
}

// Before a job is cancelled: a queued one never starts, a running one stops part-way.
export async function confirmCancel(j, what = `${j.kind} job ${j.id}`) {
  const answer = await dialog(`Cancel ${what}?`,
    h("p", {}, j.state === "queued"
      ? "It is taken off the queue and does not run; start it again to run it later."
      : "It stops at its next safe point, within a few seconds, and ends cancelled: it does not finish its work, and it is not resumed — start it again to redo it."),
    [["Keep it", ""], ["Cancel job", "cancel", "danger"]]);
  return answer === "cancel";
}

// A restore check's text in the console's words: the engine words its hints for the CLI
// (`--into NEW_NAME`, `--mode replace`, `--stop-containers`, `--host`); the wizard's
// choices are "A new volume", "Replace …'s content" and "stop the containers using it".
const CLI_HINTS = [
  [", or replace the volume with --mode replace --stop-containers, which stops and restarts them",
    ", or replace its content and stop the containers using it (they are restarted afterwards)"],
  ["pass --stop-containers to stop them during the restore", "choose to stop the containers using it during the restore"],
  ["restore without --mode replace to create it", "restore into it as a new volume instead (it is created)"],
  ["or restore elsewhere (--host)", "or restore to another host"],
  [" (--into NEW_NAME)", ""],
  [" with --mode replace (", " ("],
  ["; `volkeeper rollback` undoes it", "; it can be rolled back afterwards"],
];
export function plainCheck(detail) {
  return CLI_HINTS.reduce((text, [cli, plain]) => text.split(cli).join(plain), String(detail ?? ""));
}

// A restore's target volume state (the API's words) as the console says it.
const VOLUME_STATES = { missing: "does not exist yet (it is created)", empty: "is empty",
  "not-empty": "is not empty", unknown: "was not checked" };
export const volumeState = state => VOLUME_STATES[state] || state;
