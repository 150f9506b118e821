// The overview: fleet health (hosts online, workers and scheduler from /health), volumes
// overdue against their policy's RPO, failed jobs and drills of the last 24 h, storage per
// target, and the running jobs with live bars (refreshed every few seconds).

import { api, hasFeature } from "./api.js";
import { errorCell, heading, jobHref, liveJobs, subject, volHref, watchActive } from "./live.js";
import { bytes, fill, h, link, mark, parseTime, table, timeEl } from "./ui.js";

const DAY_MS = 86400e3;

function card(label, value, href, bad) {
  return h("a", { class: "card" + (bad ? " bad" : ""), href },
    h("span", { class: "value" }, String(value)), h("span", { class: "label" }, label));
}

const section = (id, title, ...body) =>
  h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...body);

// A drill that ran but found differences succeeded as a job with result.passed false.
const drillFailed = j => j.state === "failed" || (j.result && j.result.passed === false);

export async function overview(main, _params, ctx) {
  const live = h("ul", { class: "live-jobs", "aria-label": "Running jobs" });
  const jobsLive = liveJobs(live, ctx.can("operator") && await hasFeature("cancel"));
  const cards = h("div", { class: "cards" });
  const failedBox = h("div", {});
  const drillsBox = h("div", {});
  const overdueBox = h("div", {});
  const storage = h("div", {});
  fill(main, heading("Overview"), cards,
    section("running-h", "Running jobs", live),
    section("failed-h", "Failed in the last 24 h", failedBox),
    section("drills-h", "Restore drills in the last 24 h", drillsBox),
    section("overdue-h", "Volumes overdue", overdueBox),
    section("storage-h", "Storage per target", storage));
  const load = async () => {
    const [health, hosts, overdue, running, queued, failed, drills, targets] = await Promise.all([
      api("/health"), api("/hosts"), api("/volumes", { query: { overdue: true } }),
      api("/jobs", { query: { job_state: "running", limit: 100 } }),
      api("/jobs", { query: { job_state: "queued", limit: 100 } }),
      api("/jobs", { query: { job_state: "failed", limit: 200 } }),
      api("/drills", { query: { limit: 100 } }), api("/targets")]);
    const dayAgo = Date.now() - DAY_MS;
    const recent = j => (parseTime(j.finished_at || j.created_at) || 0) >= dayAgo;
    const failedDay = failed.filter(recent);
    const drillsDay = drills.filter(recent);
    const online = hosts.filter(x => x.online).length;
    const workers = Object.values(health.workers || {});
    const up = workers.filter(w => w === "up").length;
    const scheduler = (health.checks || {}).scheduler || "unknown";
    const total = hosts.reduce((n, x) => n + x.volume_count, 0);
    fill(cards,
      card("hosts online", `${online} / ${hosts.length}`, "#/hosts", online < hosts.length),
      card("workers up", `${up} / ${workers.length}`, "#/hosts", up < workers.length),
      card(`scheduler${health.status && health.status !== "ok" ? " · " + health.status : ""}`,
        scheduler, "#/policies", !["ok", "not running"].includes(scheduler)),
      card("volumes overdue", `${overdue.length} / ${total}`, "#/volumes?overdue=1", overdue.length > 0),
      card("failed jobs, 24 h", failedDay.length, "#/jobs?state=failed", failedDay.length > 0),
      card("failed drills, 24 h", `${drillsDay.filter(drillFailed).length} / ${drillsDay.length}`,
        "#/jobs?kind=drill", drillsDay.some(drillFailed)),
      card("running jobs", running.length + queued.length, "#/jobs?state=running"));
    jobsLive.update([...running, ...queued]);
    fill(failedBox, table([
      ["job", j => link(jobHref(j), j.id)], ["kind", j => j.kind],
      ["volume", subject], ["when", j => timeEl(j.finished_at || j.created_at)],
      ["error", errorCell]], failedDay, { empty: "no failures" }));
    fill(drillsBox, table([
      ["job", j => link(jobHref(j), j.id)], ["volume", subject],
      ["outcome", j => (j.state === "succeeded" ? (j.result.passed ? "passed" : "differences found") : j.state)],
      ["restore time", j => (j.result && j.result.restore_seconds != null ? `${j.result.restore_seconds.toFixed(1)} s` : "—")],
      ["when", j => timeEl(j.finished_at || j.created_at)], ["error", errorCell]],
    drillsDay, { empty: "no drills ran" }));
    fill(overdueBox, table([
      ["volume", v => link(volHref(v.host, v.name), `${v.host}/${v.name}`)], ["policy", v => v.policy || ""],
      ["newest good backup", v => timeEl(v.last_good_backup_at)]],
    overdue.slice(0, 20), { empty: "none: every volume with a policy is within its RPO",
      caption: overdue.length > 20 ? `20 of ${overdue.length}; all on the volumes page` : undefined }));
    fill(storage, table([
      ["target", t => t.name], ["url", t => h("code", {}, t.url)],
      ["backups", t => t.backup_count], ["stored", t => bytes(t.stored_bytes)]], targets));
    mark("overview");
  };
  await load();
  const timer = setInterval(() => load().catch(() => {}), 4000);
  const unwatch = watchActive(active => jobsLive.update(active));  // a new job at once
  return () => { clearInterval(timer); unwatch(); jobsLive.stop(); };
}
