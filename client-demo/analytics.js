// reelfork creator analytics: a story version's episode funnel and the retention of each clip, drawn with Chart.js
// (window.Chart, from vendor/chart.umd.min.js: npm's chart.js, copied there by scripts/dev).
// Data: GET /v1/stories, /v1/stories/{id}/versions and /v1/stories/{id}/analytics (creator token).
// Query parameters: ?story=<id>&version=<n>; the token from the field, or once from "#token=..." (kept for the tab,
// shared with the creator view).
"use strict";

const TOKEN_KEY = "reelfork-creator-token";
const params = new URLSearchParams(location.search);
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) sessionStorage.setItem(TOKEN_KEY, fromHash);
const creatorToken = () => sessionStorage.getItem(TOKEN_KEY) ?? "";
const $ = (id) => document.getElementById(id);
const ui = {
  storySelect: $("story-select"),
  versionSelect: $("version-select"),
  token: $("token-input"),
  refresh: $("refresh"),
  summary: $("summary"),
  report: $("report"),
  empty: $("empty"),
  funnelRows: $("funnel-rows"),
  funnelCanvas: $("funnel-chart"),
  retentionCanvas: $("retention-chart"),
  graphLink: $("graph-link"),
  status: $("status"),
};
const COLOURS = ["#f2b134", "#3dd6c3", "#b39dff", "#ff8a65", "#8ecbff", "#e9e2d0", "#ff6b9a", "#9be36d"];
const state = { storyId: null, version: null, charts: [], seq: 0 };

function endpoint(path) {
  return new URL(path, document.baseURI).href;
}

async function getJSON(path, { auth = false } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && creatorToken()) headers.Authorization = `Bearer ${creatorToken()}`;
  const response = await fetch(endpoint(path), { headers });
  if (!response.ok) {
    let detail = "";
    try { detail = (await response.json()).detail ?? ""; } catch { /* not JSON */ }
    const error = new Error(typeof detail === "string" && detail ? detail : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function setStatus(text, kind = "info") {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

function fail(text) {
  ui.report.dataset.state = "error";
  ui.empty.textContent = text;
  ui.empty.hidden = false;
  setStatus(text, "error");
}

function cell(tag, text, testid) {
  const element = document.createElement(tag);
  element.textContent = String(text);
  if (tag === "th") element.scope = "row";
  if (testid) element.dataset.testid = testid;
  return element;
}

/** One row per episode: the numbers behind the funnel chart, for reading and for screen readers. */
function funnelRows(report) {
  const walls = new Map(report.paywall.episodes.map((wall) => [wall.episode, wall]));
  return report.episodes.map((episode) => {
    const wall = walls.get(episode.number) ?? { shown: 0, unlocked: 0 };
    const row = document.createElement("tr");
    row.dataset.episode = String(episode.number);
    const n = episode.number;
    row.append(
      cell("th", `${n}. ${episode.title}`),
      cell("td", episode.started, `funnel-${n}-started`),
      cell("td", episode.finished, `funnel-${n}-finished`),
      cell("td", episode.continued, `funnel-${n}-continued`),
      cell("td", wall.shown, `funnel-${n}-paywall`),
      cell("td", wall.unlocked, `funnel-${n}-unlocked`),
    );
    return { row, wall, episode };
  });
}

function drawFunnel(report) {
  const rows = funnelRows(report);
  ui.funnelRows.replaceChildren(...rows.map((r) => r.row));
  const series = [
    ["Started", (r) => r.episode.started],
    ["Finished", (r) => r.episode.finished],
    ["Continued", (r) => r.episode.continued],
    ["Paywall shown", (r) => r.wall.shown],
    ["Unlocked", (r) => r.wall.unlocked],
  ];
  return new window.Chart(ui.funnelCanvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => `Ep ${r.episode.number}`),
      datasets: series.map(([label, value], i) => ({ label, data: rows.map(value), backgroundColor: COLOURS[i] })),
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { beginAtZero: true, ticks: { precision: 0, color: "#a9abb8" } }, x: { ticks: { color: "#a9abb8" } } },
      plugins: { legend: { labels: { color: "#f3f1ec" } } },
    },
  });
}

function drawRetention(report) {
  const longest = Math.max(1, ...report.retention.map((clip) => clip.watching.length));
  return new window.Chart(ui.retentionCanvas, {
    type: "line",
    data: {
      labels: Array.from({ length: longest }, (_, second) => `${second}s`),
      datasets: report.retention.map((clip, i) => ({
        label: `${clip.scene} (${clip.entries})`,
        data: clip.watching.map((share) => Math.round(share * 1000) / 10),
        borderColor: COLOURS[i % COLOURS.length],
        backgroundColor: COLOURS[i % COLOURS.length],
        pointRadius: 0,
        cubicInterpolationMode: "monotone",
      })),
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: {
        y: { min: 0, max: 100, ticks: { callback: (v) => `${v}%`, color: "#a9abb8" } },
        x: { ticks: { color: "#a9abb8", maxTicksLimit: 12 } },
      },
      plugins: { legend: { labels: { color: "#f3f1ec", boxWidth: 12 } } },
    },
  });
}

async function loadReport() {
  const seq = ++state.seq;
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  ui.report.dataset.state = "loading";
  ui.empty.hidden = true;
  if (typeof window.Chart !== "function") {
    fail("Charts unavailable: vendor/chart.umd.min.js did not load. Run scripts/dev (it runs npm ci and copies Chart.js into client-demo/vendor/).");
    return;
  }
  if (!creatorToken()) {
    fail("The report is the creator's: enter the creator token.");
    return;
  }
  const query = state.version === null ? "" : `?version=${state.version}`;
  let report;
  try {
    report = await getJSON(`v1/stories/${encodeURIComponent(state.storyId)}/analytics${query}`, { auth: true });
  } catch (error) {
    if (seq !== state.seq) return;
    fail(error.status === 401 || error.status === 403
      ? `The creator token was refused (${error.message}).`
      : `Could not load the report (${error.message}).`);
    return;
  }
  if (seq !== state.seq) return;
  state.charts = [drawFunnel(report), drawRetention(report)];
  ui.summary.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = `${report.story} \u00B7 v${report.version}`;
  const rate = report.paywall.unlock_rate === null ? "\u2013" : `${Math.round(report.paywall.unlock_rate * 100)}%`;
  const sessions = document.createElement("span");
  sessions.dataset.testid = "sessions-started";
  sessions.textContent = String(report.sessions_started);
  ui.summary.append(title, document.createElement("br"), sessions,
    ` sessions \u00B7 ${report.paywall.shown} met the paywall \u00B7 ${report.paywall.unlocked} unlocked (${rate})`);
  ui.report.dataset.version = String(report.version);
  ui.report.dataset.state = "ready";
  setStatus("", "ready");
}

async function loadStory(id, version) {
  state.storyId = id;
  state.version = version;
  ui.storySelect.value = id;
  const url = new URL(location.href);
  url.searchParams.set("story", id);
  if (version === null) url.searchParams.delete("version"); else url.searchParams.set("version", String(version));
  history.replaceState(null, "", url);
  const graph = new URL("creator.html", document.baseURI);
  graph.search = url.search;
  ui.graphLink.href = graph.href;
  const versions = await getJSON(`v1/stories/${encodeURIComponent(id)}/versions`).then((v) => v.versions ?? []).catch(() => []);
  const latest = Math.max(0, ...versions);
  ui.versionSelect.replaceChildren(new Option(`latest${latest ? ` (v${latest})` : ""}`, ""),
    ...[...versions].sort((a, b) => b - a).map((v) => new Option(`v${v}`, String(v))));
  ui.versionSelect.value = version === null ? "" : String(version);
  ui.versionSelect.disabled = versions.length < 2;
  await loadReport();
}

async function boot() {
  setStatus("Loading stories\u2026", "loading");
  let stories = [];
  try {
    stories = (await getJSON("v1/stories")).stories ?? [];
  } catch (error) {
    fail(`Could not load stories (${error.message}).`);
    return;
  }
  ui.storySelect.replaceChildren(...stories.map((story) => new Option(story.title || story.id, story.id)));
  ui.storySelect.disabled = stories.length === 0;
  if (!stories.length) {
    fail("No stories are published yet.");
    return;
  }
  const wanted = params.get("story");
  const version = Number.parseInt(params.get("version") ?? "", 10);
  const known = stories.some((story) => story.id === wanted);
  await loadStory(known ? wanted : stories[0].id, known && version > 0 ? version : null);
}

ui.storySelect.addEventListener("change", () => loadStory(ui.storySelect.value, null));
ui.versionSelect.addEventListener("change", () => {
  const version = Number.parseInt(ui.versionSelect.value, 10);
  loadStory(state.storyId, Number.isNaN(version) ? null : version);
});
ui.refresh.addEventListener("click", () => { if (state.storyId) loadReport(); });
ui.token.value = creatorToken();
ui.token.addEventListener("change", () => {
  sessionStorage.setItem(TOKEN_KEY, ui.token.value.trim());
  if (state.storyId) loadReport();
});

boot();
