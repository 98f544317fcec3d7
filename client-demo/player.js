// reelfork demo player. No framework, no build step.
// Protocol: see the project docs ("/v1/play" websocket). Query parameters:
//   ?story=<id>   start (or resume) that story without showing the picker
//   ?rate=<n>     video.playbackRate, for tests and reviewers (0.25..16)
//
// Playback drives the choice: a scene's `choice_window` {opens_at, closes_at} is on its clip's own timeline.
// The choices slide in at `opens_at` while the clip plays; the countdown to `closes_at` follows the playback
// position, so it stops while the video is paused or buffering. After the clip ends the last frame holds and
// the position keeps counting past the end (a window may run on after it). The player reports `progress`
// about once a second (paused too) and once more when the position crosses `closes_at`; the server then
// takes the default choice and sends the next scene, so a paused viewer is never moved on.
"use strict";

const params = new URLSearchParams(location.search);
const RATE = clampNumber(params.get("rate"), 1, 0.25, 16);
const AUTOSTART = params.get("story");
const PROGRESS_EVERY_MS = 1000;
const TICK_MS = 100;
const EPISODE_CARD_MS = 3000;
const DEMO_TOKEN_FRESH_MS = 20000;
const MAX_POSITION = 86400;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $("stage"),
  picker: $("picker"),
  persona: $("persona"),
  personaForm: $("persona-form"),
  personaStory: $("persona-story"),
  personaName: $("persona-name"),
  personaNameField: $("persona-name-field"),
  personaLooks: $("persona-looks"),
  personaLooksField: $("persona-looks-field"),
  personaLocale: $("persona-locale"),
  personaLocaleField: $("persona-locale-field"),
  personaError: $("persona-error"),
  personaBack: $("persona-back"),
  storyList: $("story-list"),
  player: $("player"),
  video: $("video"),
  progress: $("progress-fill"),
  back: $("back"),
  playPause: $("play-pause"),
  storyTitle: $("story-title"),
  sceneTitle: $("scene-title"),
  spinner: $("spinner"),
  spinnerText: $("spinner-text"),
  tapToPlay: $("tap-to-play"),
  unmute: $("unmute"),
  episodeCard: $("episode-card"),
  episodeNumber: $("episode-number"),
  episodeTitle: $("episode-title"),
  choices: $("choices"),
  choiceList: $("choice-list"),
  countdown: $("countdown"),
  countdownNumber: $("countdown-number"),
  countdownFill: $("countdown-fill"),
  countdownLive: $("countdown-live"),
  paywall: $("paywall"),
  paywallEpisode: $("paywall-episode"),
  paywallTitle: $("paywall-title"),
  paywallCoins: $("paywall-coins"),
  paywallNote: $("paywall-note"),
  demoUnlock: $("demo-unlock"),
  paywallBack: $("paywall-back"),
  ending: $("ending"),
  endingScene: $("ending-scene"),
  playAgain: $("play-again"),
  otherStories: $("other-stories"),
  status: $("status"),
};

const state = {
  stories: new Map(), // id -> a /v1/stories entry
  storyId: null,
  locale: null, // the session's locale, from the `session` message: the subtitles' language
  socket: null,
  wantConnection: false, // false once the viewer left the player or reached the end
  attempts: 0,
  retryTimer: 0,
  protocol: 1, // from the `session` message; 2 adds choice windows, progress.playing, choose.scene
  scene: null, // the last `scene` message
  clips: new Map(), // scene id -> {url, stream, duration, window, subtitles}, from `scene` and `clip` messages
  hls: null, // the hls.js player of the stream playing, if any
  resuming: false, // true between sending `resume` and the first `scene` or `locked` after it
  resumeAt: 0, // where to start the next clip (a resumed scene's `position`)
  phase: "idle", // idle | waiting | rendering | playing | locked | ending
  choice: "none", // none | open | chosen (by the viewer) | defaulted (the window closed)
  pending: null, // the choice sent and not yet answered: {choice, tries}
  retryChoiceTimer: 0,
  hold: null, // after the clip ended: {base, banked, since, paused}; the position counts on from `base`
  crossed: false, // the progress report at `closes_at` was sent for this scene
  announced: 0, // the last whole second the countdown announced to screen readers
  progressTimer: 0,
  tickTimer: 0,
  crossTimer: 0,
  episode: null, // the episode number last shown on a card
  episodeTimer: 0,
  locked: null, // the `locked` message while the session waits at a paywall
  demo: null, // {entitlement, at} minted by the demo unlock route
};

// ---------- small helpers ----------

function clampNumber(raw, fallback, min, max) {
  const n = Number.parseFloat(raw ?? "");
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function endpoint(path, ws = false) {
  const url = new URL(path, document.baseURI);
  if (ws) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

const sessionKey = (storyId) => `reelfork:session:${storyId}`;
const progressKey = (storyId) => `reelfork:progress:${storyId}`;
const personaKey = (storyId) => `reelfork:persona:${storyId}`; // {name, look, locale} from the sheet

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, typeof value === "string" ? value : JSON.stringify(value));
  } catch { /* private mode or quota: sessions just won't survive a reload */ }
}

function load(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function safeJSON(text) {
  try { return JSON.parse(text ?? "null"); } catch { return null; }
}

function setStatus(text, kind = "info", quiet = false) {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
  ui.status.toggleAttribute("data-quiet", quiet);
}

function setPhase(phase) {
  state.phase = phase;
  ui.stage.dataset.phase = phase;
  syncHold();
  syncPlayPause();
}

function show(view) {
  ui.stage.dataset.view = view;
  ui.picker.hidden = view !== "picker";
  ui.persona.hidden = view !== "persona";
  ui.player.hidden = view !== "player";
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// ---------- story picker ----------

async function loadStories() {
  ui.storyList.setAttribute("aria-busy", "true");
  setStatus("Loading stories…", "loading");
  try {
    const response = await fetch(endpoint("v1/stories"), { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { stories = [] } = await response.json();
    state.stories = new Map(stories.map((s) => [s.id, s]));
    renderStoryList(stories);
    setStatus(stories.length ? "Pick a story" : "No stories yet", "ready", true);
  } catch (error) {
    renderStoryList([]);
    setStatus(`Could not load stories (${error.message}).`, "error");
  } finally {
    ui.storyList.setAttribute("aria-busy", "false");
  }
}

function episodesLine(story) {
  const episodes = Array.isArray(story.episodes) ? story.episodes : [];
  if (episodes.length < 2) return "";
  const free = episodes.filter((e) => e.free).length;
  const line = plural(episodes.length, "episode", "episodes");
  return free < episodes.length ? `${line} · ${free === 1 ? "first" : `first ${free}`} free` : line;
}

function renderStoryList(stories) {
  ui.storyList.replaceChildren();
  if (!stories.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No stories available.";
    ui.storyList.append(li);
    return;
  }
  for (const story of stories) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "story-card";
    button.setAttribute("data-testid", `story-${story.id}`);
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = story.title || story.id;
    const logline = document.createElement("span");
    logline.className = "logline";
    logline.textContent = story.logline || "";
    button.append(title, logline);
    const episodes = episodesLine(story);
    if (episodes) {
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = episodes;
      button.append(meta);
    }
    const cta = document.createElement("span");
    cta.className = "cta";
    cta.textContent = load(sessionKey(story.id)) ? "Continue" : "Play";
    button.append(cta);
    button.addEventListener("click", () => pickStory(story.id));
    li.append(button);
    ui.storyList.append(li);
  }
}

// ---------- make it yours ----------

// A story with a persona or several locales asks who the viewer plays and in which language first;
// a saved session continues as it was.
function pickStory(storyId, error = "") {
  const story = state.stories.get(storyId);
  const looks = story?.persona?.looks ?? [];
  const locales = story?.locales ?? [];
  if (load(sessionKey(storyId)) || (!story?.persona && locales.length < 2)) {
    openStory(storyId);
    return;
  }
  const saved = safeJSON(load(personaKey(storyId))) ?? {};
  state.storyId = storyId;
  ui.personaStory.textContent = story.title || storyId;
  ui.personaNameField.hidden = !story.persona;
  ui.personaName.value = saved.name ?? story.persona?.name ?? "";
  ui.personaName.placeholder = story.persona?.name ?? "";
  ui.personaName.maxLength = story.persona?.max_name ?? 64;
  ui.personaLooksField.hidden = looks.length < 2;
  ui.personaLooks.replaceChildren();
  looks.forEach((look, index) => {
    const label = document.createElement("label");
    label.className = "persona-look";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "look";
    input.value = look.id;
    input.setAttribute("data-testid", `look-${look.id}`);
    input.checked = saved.look ? saved.look === look.id : index === 0;
    const swatch = document.createElement("span");
    swatch.className = "persona-swatch";
    swatch.style.background = look.color || "transparent";
    swatch.setAttribute("aria-hidden", "true");
    label.append(input, swatch, document.createTextNode(look.label));
    ui.personaLooks.append(label);
  });
  ui.personaLocaleField.hidden = locales.length < 2;
  ui.personaLocale.replaceChildren();
  for (const locale of locales) {
    const option = document.createElement("option");
    option.value = locale;
    option.textContent = languageName(locale);
    option.selected = locale === (saved.locale ?? story.language ?? locales[0]);
    ui.personaLocale.append(option);
  }
  ui.personaError.textContent = error;
  show("persona");
  (error ? ui.personaName : $("persona-play")).focus({ preventScroll: true });
}

function languageName(locale) {
  try {
    const name = new Intl.DisplayNames([locale], { type: "language" }).of(locale);
    return name ? name.charAt(0).toUpperCase() + name.slice(1) : locale;
  } catch {
    return locale;
  }
}

ui.personaForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const story = state.stories.get(state.storyId);
  const choice = {};
  if (story?.persona) {
    const name = ui.personaName.value.trim();
    if (name) choice.name = name;
    const look = ui.personaLooks.querySelector("input:checked");
    if (look) choice.look = look.value;
  }
  if (ui.personaLocale.value) choice.locale = ui.personaLocale.value;
  store(personaKey(state.storyId), choice);
  openStory(state.storyId, { fresh: true });
});
ui.personaBack.addEventListener("click", () => backToPicker());

// The `start` message, with the persona and locale picked on the sheet (absent: the story's defaults).
function startMessage() {
  const message = { type: "start", story: state.storyId };
  const saved = safeJSON(load(personaKey(state.storyId)));
  if (saved?.locale) message.locale = saved.locale;
  const persona = {};
  if (saved?.name) persona.name = saved.name;
  if (saved?.look) persona.look = saved.look;
  if (Object.keys(persona).length) message.persona = persona;
  return message;
}

// ---------- connection ----------

function openStory(storyId, { fresh = false } = {}) {
  closeConnection();
  if (fresh) {
    store(sessionKey(storyId), null);
    store(progressKey(storyId), null);
  }
  state.storyId = storyId;
  state.scene = null;
  state.clips.clear();
  state.attempts = 0;
  state.episode = null;
  state.locked = null;
  state.wantConnection = true;
  ui.storyTitle.textContent = state.stories.get(storyId)?.title ?? storyId;
  ui.sceneTitle.textContent = "";
  leaveScene();
  hidePaywall();
  stopStream();
  ui.video.removeAttribute("src");
  ui.video.removeAttribute("data-scene");
  ui.video.removeAttribute("data-source");
  ui.video.load();
  show("player");
  setPhase("waiting");
  showSpinner("Starting…");
  setStatus("Connecting…", "loading", true);
  if (params.get("story") !== storyId) {
    const url = new URL(location.href);
    url.searchParams.set("story", storyId);
    history.replaceState(null, "", url);
  }
  connect();
}

function connect() {
  clearTimeout(state.retryTimer);
  const socket = new WebSocket(endpoint("v1/play", true));
  state.socket = socket;
  socket.addEventListener("open", () => {
    const token = load(sessionKey(state.storyId));
    state.resuming = Boolean(token);
    send(token ? { type: "resume", session: token } : startMessage());
  });
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    handle(message);
  });
  socket.addEventListener("close", () => {
    if (state.socket !== socket) return; // superseded
    state.socket = null;
    if (state.wantConnection) scheduleReconnect();
  });
  // "error" is always followed by "close"; nothing to do here.
}

function scheduleReconnect() {
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempts);
  const jittered = delay / 2 + Math.random() * (delay / 2);
  state.attempts += 1;
  setStatus(`Connection lost. Reconnecting in ${Math.ceil(jittered / 1000)} s…`, "reconnecting");
  state.retryTimer = setTimeout(connect, jittered);
}

function closeConnection() {
  state.wantConnection = false;
  clearTimeout(state.retryTimer);
  clearTimeout(state.retryChoiceTimer);
  stopClock();
  const socket = state.socket;
  state.socket = null;
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "bye");
}

function send(message) {
  if (state.socket?.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(message));
    return true;
  }
  return false;
}

function reconnectNow() {
  if (state.wantConnection && !state.socket) connect();
}

addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
  syncHold(); // the held last frame does not count on in a hidden tab
  tick();
});

// ---------- protocol ----------

function handle(message) {
  switch (message.type) {
    case "session":
      state.attempts = 0;
      if (message.story && message.story !== state.storyId) return;
      state.protocol = Number.isInteger(message.protocol) ? message.protocol : 1;
      store(sessionKey(state.storyId), message.session);
      state.locale = message.locale ?? null;
      setStatus("Connected", "connected", true);
      break;
    case "scene":
      onScene(message);
      break;
    case "clip":
      onClip(message);
      break;
    case "locked":
      onLocked(message);
      break;
    case "error":
      onError(message);
      break;
    default:
      break; // unknown message types are ignored so the server can add new ones
  }
}

function onError({ code, message }) {
  if (code === "unknown_session") {
    state.resuming = false;
    store(sessionKey(state.storyId), null);
    store(progressKey(state.storyId), null);
    send(startMessage());
    return;
  }
  if (code === "invalid_name" || code === "unknown_look" || code === "unsupported_locale") {
    // No session was made: back to the sheet, saying what to change.
    state.wantConnection = false;
    closeConnection();
    store(personaKey(state.storyId), null);
    pickStory(state.storyId, message || code);
    return;
  }
  if (code === "stale_choice") return; // the scene moved on already (the default); its `scene` is on its way
  if (code === "locked" && state.locked) {
    showPaywall(state.locked);
    return;
  }
  if (code === "invalid_entitlement" && state.phase === "locked") {
    state.demo = null;
    ui.demoUnlock.disabled = false;
    ui.paywallNote.textContent = "That unlock was refused. Try again.";
    return;
  }
  if (code === "not_ready" && state.choice === "chosen" && state.pending && state.pending.tries < 20) {
    // The next scene is still being written (an open node): ask again shortly.
    showSpinner("Writing what happens next…");
    const pending = state.pending;
    state.retryChoiceTimer = setTimeout(() => {
      if (state.choice !== "chosen" || state.pending !== pending) return;
      pending.tries += 1;
      sendChoose(pending.choice);
    }, 1500);
    return;
  }
  if (code === "not_ready" && state.choice === "defaulted") {
    // The default's scene is still being written: the progress reports (once a second) ask again.
    showSpinner("Writing what happens next…");
    return;
  }
  setStatus(message || code || "Something went wrong.", "error");
  if (state.choice === "chosen") {
    // Let the viewer try again.
    state.pending = null;
    state.choice = "none";
    showChoices();
  }
}

function onScene(scene) {
  const continuing = state.resuming && state.phase !== "locked" && state.scene?.scene === scene.scene;
  state.resuming = false;
  state.locked = null;
  hidePaywall();
  state.scene = scene;
  if (scene.clip || scene.stream) {
    remember(scene.scene, scene.clip, scene.stream, scene.duration, scene.choice_window, scene.subtitles);
  }
  if (scene.poster) ui.video.poster = scene.poster;
  else ui.video.removeAttribute("poster");
  if (continuing) {
    // After a reconnect the server repeats the scene we are already in: carry on from here.
    if (state.phase === "rendering" && (scene.clip || scene.stream)) playClip();
    else if (state.choice === "chosen" && state.pending) sendChoose(state.pending.choice);
    else if (state.choice === "defaulted") reportProgress();
    return;
  }
  leaveScene();
  ui.sceneTitle.textContent = scene.title || "";
  showEpisodeCard(scene.episode);
  state.resumeAt = resumePosition(scene);
  if (state.clips.has(scene.scene)) {
    playClip();
  } else {
    setPhase("rendering");
    ui.video.pause();
    showSpinner("Rendering…");
    setStatus(`Rendering “${scene.title || scene.scene}”…`, "rendering", true);
  }
}

// A `clip` frame brings what the scene lacked: its stream (url still null), then its complete MP4. A stream that
// plays already goes on playing (the MP4 is the same picture and voice); the MP4 serves a later replay.
function onClip(message) {
  const known = state.clips.get(message.scene);
  remember(message.scene, message.url, message.stream ?? known?.stream ?? null, message.duration,
           message.choice_window, message.subtitles);
  if (state.scene?.scene === message.scene && state.phase === "rendering") playClip();
}

function remember(scene, url, stream, duration, win, subtitles) {
  state.clips.set(scene, { url: url ?? null, stream: stream ?? null, duration, window: win ?? null,
                           subtitles: subtitles ?? null });
}

// ---------- streams ----------

// A stream is an HLS EVENT playlist that grows while the clip renders. hls.js (npm, copied to vendor/ by
// scripts/dev) plays it from its start through Media Source Extensions; Chromium's own HLS would start an
// EVENT playlist at its live edge, skipping what came before, so native HLS is only used where hls.js cannot run
// (Safari on iOS, which starts at EXT-X-START).
let hlsLoaded = null;

function loadHls() {
  hlsLoaded ??= new Promise((resolve) => {
    const script = document.createElement("script");
    script.src = "vendor/hls.light.min.js";
    script.onload = () => resolve(window.Hls ?? null);
    script.onerror = () => resolve(null);
    document.head.append(script);
  });
  return hlsLoaded;
}

function stopStream() {
  if (state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
}

async function playStream(video, url) {
  const Hls = await loadHls();
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ enableWorker: false, startPosition: 0 });
    state.hls = hls;
    hls.loadSource(url);
    hls.attachMedia(video);
    return true;
  }
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    return true;
  }
  return false;
}

// The clip's subtitles (WebVTT in the viewer's locale, speaker names in it) as the video's text track.
function showSubtitles(url) {
  for (const old of ui.video.querySelectorAll("track")) old.remove();
  if (!url) return;
  const track = document.createElement("track");
  track.kind = "subtitles";
  track.srclang = state.locale || "und";
  track.label = state.locale ? languageName(state.locale) : "Subtitles";
  track.src = url;
  track.default = true;
  ui.video.append(track);
  track.track.mode = "showing";
}

// Where a scene starts: its `position` when the server resumes us into it (protocol 2), else the
// position this browser saved for it (older servers), else the start.
function resumePosition(scene) {
  if (typeof scene.position === "number") return Math.max(0, scene.position);
  const saved = safeJSON(load(progressKey(state.storyId)));
  return saved?.scene === scene.scene && saved.position > 0 ? saved.position : 0;
}

function sendChoose(choice) {
  const message = { type: "choose", choice };
  if (state.protocol >= 2 && state.scene) message.scene = state.scene.scene;
  return send(message);
}

// ---------- playback ----------

function currentClip() {
  return state.scene ? state.clips.get(state.scene.scene) ?? null : null;
}

function playClip() {
  const video = ui.video;
  const scene = state.scene;
  const clip = currentClip();
  if (!scene || !clip) return;
  hideSpinner();
  setPhase("playing");
  setStatus(`Playing “${scene.title || scene.scene}”`, "playing", true);
  video.dataset.scene = scene.scene;
  video.defaultPlaybackRate = RATE;
  video.playbackRate = RATE;
  const start = state.resumeAt;
  state.resumeAt = 0;
  startClock();
  const source = clip.url ?? clip.stream;
  if (video.dataset.source === source && video.readyState >= HTMLMediaElement.HAVE_METADATA) {
    startAt(start); // the same clip again (a story loop, or a resume): no reload
    return;
  }
  stopStream();
  video.dataset.source = source;
  showSubtitles(clip.subtitles);
  if (!clip.url) {
    // The stream, from its first segment: the complete MP4 follows in a `clip` frame and serves later replays.
    video.removeAttribute("src");
    playStream(video, clip.stream).then((playing) => {
      if (state.scene !== scene || state.phase !== "playing") return;
      if (!playing) {
        setPhase("rendering");
        showSpinner("Rendering…");
        state.clips.set(scene.scene, { ...clip, stream: null }); // wait for the MP4
      } else if (start > 0) {
        video.addEventListener("loadedmetadata", () => startAt(start), { once: true });
      } else {
        tryPlay();
      }
    });
    return;
  }
  video.src = clip.url;
  if (start > 0) {
    video.addEventListener("loadedmetadata", () => {
      if (state.scene === scene && state.phase === "playing") startAt(start);
    }, { once: true });
  } else {
    tryPlay();
  }
}

// Start the clip at `position`; a position past the clip's end (a resume while the last frame held)
// shows the last frame and counts on from there.
function startAt(position) {
  const video = ui.video;
  const end = Number.isFinite(video.duration) ? video.duration : 0;
  if (end > 0 && position >= end - 0.05) {
    video.pause();
    video.currentTime = end;
    startHold(Math.max(position, end));
    return;
  }
  video.currentTime = position;
  tryPlay();
}

// Autoplay policy: without a user gesture (e.g. ?story=... or a reload), browsers refuse playback with
// sound. Then play muted and offer "Tap for sound"; if even that is refused, show "Tap to play".
async function tryPlay() {
  ui.tapToPlay.hidden = true;
  const video = ui.video;
  if (state.hold) {
    state.hold.paused = false;
    syncHold();
    tick();
    return;
  }
  try {
    await video.play();
  } catch (error) {
    if (error.name !== "NotAllowedError") return; // AbortError: a newer src took over
    if (!video.muted) {
      video.muted = true;
      try {
        await video.play();
        ui.unmute.hidden = false;
        return;
      } catch { /* fall through */ }
    }
    ui.tapToPlay.hidden = false;
    ui.tapToPlay.focus();
  }
}

function pausePlayback() {
  if (state.hold) {
    state.hold.paused = true;
    syncHold();
    tick();
  } else {
    ui.video.pause();
  }
}

function isPaused() {
  return state.hold ? state.hold.paused : ui.video.paused;
}

function togglePlay() {
  if (state.phase !== "playing") return;
  if (isPaused()) tryPlay();
  else pausePlayback();
}

function syncPlayPause() {
  const paused = state.phase !== "playing" || isPaused();
  ui.playPause.hidden = state.phase !== "playing";
  ui.playPause.setAttribute("aria-label", paused ? "Play" : "Pause");
  ui.playPause.dataset.paused = String(paused);
}

// ---------- the position: the clip's timeline, then the held last frame ----------

function startHold(base) {
  if (state.hold) return;
  state.hold = { base, banked: 0, since: null, paused: false };
  syncHold();
  syncPlayPause();
  tick();
}

// The held frame counts on at the playback rate while the player is on it, not paused, and visible.
function syncHold() {
  const hold = state.hold;
  if (!hold) return;
  const running = !hold.paused && state.phase === "playing" && document.visibilityState === "visible";
  const now = performance.now();
  if (running && hold.since === null) hold.since = now;
  if (!running && hold.since !== null) {
    hold.banked += ((now - hold.since) / 1000) * RATE;
    hold.since = null;
  }
}

function position() {
  const hold = state.hold;
  if (!hold) return ui.video.currentTime;
  const running = hold.since === null ? 0 : ((performance.now() - hold.since) / 1000) * RATE;
  return hold.base + hold.banked + running;
}

// Whether the position is advancing: not paused, not buffering, not stopped at the end.
function isPlaying() {
  if (state.phase !== "playing") return false;
  if (state.hold) return state.hold.since !== null;
  const video = ui.video;
  return !video.paused && !video.ended && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA;
}

function choiceWindow() {
  const win = currentClip()?.window ?? state.scene?.choice_window ?? null;
  if (!win || !Number.isFinite(win.opens_at) || !Number.isFinite(win.closes_at)) return null;
  return win;
}

function onThisScene() {
  const scene = state.scene?.scene;
  return Boolean(scene) && state.phase === "playing" && ui.video.dataset.scene === scene;
}

function reportProgress() {
  if (!onThisScene() || state.choice === "chosen") return; // a viewer's choice ends the scene's reports
  const scene = state.scene.scene;
  const at = position();
  let reported = Math.min(MAX_POSITION, Math.round(at * 1000) / 1000);
  const win = choiceWindow();
  if (win && at >= win.closes_at) reported = Math.max(reported, win.closes_at); // rounding never undoes a crossing
  const message = { type: "progress", scene, position: reported };
  if (state.protocol >= 2) message.playing = isPlaying();
  send(message);
  store(progressKey(state.storyId), { scene, position: reported });
}

function startClock() {
  stopClock();
  state.progressTimer = setInterval(reportProgress, PROGRESS_EVERY_MS);
  state.tickTimer = setInterval(tick, TICK_MS);
}

function stopClock() {
  clearInterval(state.progressTimer);
  clearInterval(state.tickTimer);
  clearTimeout(state.crossTimer);
  state.progressTimer = 0;
  state.tickTimer = 0;
  state.crossTimer = 0;
}

// Everything that follows the position: the progress bar, the window opening, the countdown, and
// the report at the moment the position crosses `closes_at`.
function tick() {
  if (!onThisScene()) return;
  const at = position();
  const { duration } = ui.video;
  const fraction = duration > 0 ? Math.min(1, at / duration) : 0;
  ui.progress.style.transform = `scaleX(${fraction})`;
  const win = choiceWindow();
  if (!win || state.scene.ending || !state.scene.choices?.length) return;
  if (state.choice === "none" && at >= win.opens_at) showChoices();
  if (state.choice !== "none") renderCountdown(win, at);
  clearTimeout(state.crossTimer);
  if (state.crossed) return;
  if (at >= win.closes_at) {
    state.crossed = true;
    reportProgress();
    if (state.choice === "open") takeDefault();
  } else if (isPlaying()) {
    // Wake at the crossing itself rather than at the next tick; a late timer (buffering) just ticks again.
    const rate = state.hold ? RATE : ui.video.playbackRate || RATE;
    state.crossTimer = setTimeout(tick, Math.max(0, ((win.closes_at - at) / rate) * 1000));
  }
}

const video = ui.video;
for (const event of ["timeupdate", "seeked", "pause", "play", "playing", "waiting"]) {
  video.addEventListener(event, () => {
    syncPlayPause();
    tick();
  });
}
video.addEventListener("waiting", () => {
  if (state.phase === "playing" && !state.hold) showSpinner("Buffering…");
});
video.addEventListener("playing", () => {
  hideSpinner();
  ui.tapToPlay.hidden = true;
});
video.addEventListener("ended", () => {
  if (state.phase !== "playing" || state.hold) return;
  hideSpinner();
  if (state.scene?.ending) {
    reportProgress();
    showEnding();
  } else if (choiceWindow()) {
    startHold(video.duration || video.currentTime); // the last frame holds; the window runs on
  } else if (state.choice === "none") {
    reportProgress();
    showChoices(); // an older server without choice windows: choose after the end
  }
});
video.addEventListener("error", () => {
  if (!video.getAttribute("src")) return;
  const code = video.error?.code ?? "?";
  hideSpinner();
  setStatus(`This clip could not be played (media error ${code}).`, "error");
  // Do not strand the viewer: offer the choices anyway (the server's backstop takes the default).
  if (state.phase === "playing") {
    if (state.scene?.ending) showEnding();
    else if (state.choice === "none") showChoices();
  }
});
video.addEventListener("click", togglePlay);
ui.playPause.addEventListener("click", togglePlay);
ui.tapToPlay.addEventListener("click", () => {
  video.muted = false; // a gesture: sound is allowed now
  ui.unmute.hidden = true;
  tryPlay();
});
ui.unmute.addEventListener("click", () => {
  video.muted = false;
  ui.unmute.hidden = true;
  if (isPaused() && state.phase === "playing") tryPlay();
});

// ---------- overlays ----------

function showSpinner(text) {
  ui.spinnerText.textContent = text;
  ui.spinner.hidden = false;
}

function hideSpinner() {
  ui.spinner.hidden = true;
}

// Forget the scene being left: its choices, its held frame, its timers.
function leaveScene() {
  stopClock();
  clearTimeout(state.retryChoiceTimer);
  state.pending = null;
  state.choice = "none";
  state.hold = null;
  state.crossed = false;
  state.announced = 0;
  hideSpinner();
  ui.tapToPlay.hidden = true;
  ui.choices.hidden = true;
  ui.choices.removeAttribute("data-state");
  ui.choiceList.replaceChildren();
  ui.countdown.hidden = true;
  ui.countdownLive.textContent = "";
  ui.ending.hidden = true;
  ui.progress.style.transform = "scaleX(0)";
}

function showEpisodeCard(episode) {
  if (!episode || !Number.isInteger(episode.number) || episode.number === state.episode) return;
  state.episode = episode.number;
  ui.episodeNumber.textContent = `Episode ${episode.number}`;
  ui.episodeTitle.textContent = episode.title || "";
  ui.episodeCard.hidden = false;
  clearTimeout(state.episodeTimer);
  state.episodeTimer = setTimeout(() => { ui.episodeCard.hidden = true; }, EPISODE_CARD_MS);
}

function defaultChoiceId(scene) {
  const flagged = (scene.choices ?? []).find((c) => c.default === true);
  return flagged?.id ?? scene.default?.choice ?? null; // protocol 1 sent {default: {choice, timeout_s}}
}

function showChoices() {
  const scene = state.scene;
  if (!scene) return;
  state.choice = "open";
  hideSpinner();
  const defaultId = defaultChoiceId(scene);
  ui.choiceList.replaceChildren();
  for (const choice of scene.choices ?? []) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice";
    button.setAttribute("data-testid", `choice-${choice.id}`);
    button.dataset.choice = choice.id;
    button.textContent = choice.label;
    if (choice.id === defaultId) {
      button.classList.add("is-default");
      button.dataset.default = "true";
    }
    button.addEventListener("click", () => choose(choice, button));
    ui.choiceList.append(button);
  }
  ui.choices.dataset.state = "open";
  ui.choices.hidden = false;
  ui.countdown.hidden = !choiceWindow();
  setStatus("What happens next?", "choosing", true);
  ui.choiceList.querySelector("button")?.focus({ preventScroll: true });
  const win = choiceWindow();
  if (win) {
    const seconds = Math.ceil(win.closes_at - position());
    ui.countdownLive.textContent = `Choose what happens next: ${plural(seconds, "second", "seconds")}.`;
    state.announced = seconds;
  }
}

function renderCountdown(win, at) {
  const left = Math.max(0, win.closes_at - at);
  const span = Math.max(0.001, win.closes_at - win.opens_at);
  const seconds = Math.ceil(left);
  ui.countdown.dataset.remaining = left.toFixed(1);
  ui.countdown.dataset.running = String(isPlaying() && left > 0);
  ui.countdownNumber.textContent = String(seconds);
  ui.countdown.setAttribute("aria-label", `${plural(seconds, "second", "seconds")} left to choose`);
  ui.countdownFill.style.transform = `scaleX(${Math.min(1, left / span)})`;
  // Screen readers hear the countdown at a few moments, not every second.
  if (state.choice === "open" && seconds !== state.announced && (seconds === 5 || seconds === 3)) {
    state.announced = seconds;
    ui.countdownLive.textContent = `${plural(seconds, "second", "seconds")} left.`;
  }
}

function lockChoices(picked) {
  for (const button of ui.choiceList.querySelectorAll("button")) {
    button.disabled = true;
    button.setAttribute("aria-pressed", String(button === picked));
  }
}

function choose(choice, button) {
  if (state.choice !== "open") return;
  state.choice = "chosen";
  state.pending = { choice: choice.id, tries: 0 };
  ui.choices.dataset.state = "chosen";
  lockChoices(button);
  if (sendChoose(choice.id)) {
    setStatus(`You chose: ${choice.label}`, "chosen");
  } else {
    // Offline: keep the choice; it is sent again once the session is resumed.
    setStatus("Reconnecting… your choice will be sent.", "reconnecting");
    reconnectNow();
  }
}

// The window closed without a choice: show the default as picked. The server takes it when the
// progress report at `closes_at` arrives and sends the next scene; nothing else is sent from here.
function takeDefault() {
  state.choice = "defaulted";
  ui.choices.dataset.state = "defaulted";
  const picked = ui.choiceList.querySelector("[data-default='true']") ?? ui.choiceList.querySelector("button");
  lockChoices(picked);
  picked?.classList.add("is-picked");
  const label = picked?.textContent ?? "";
  ui.countdownLive.textContent = `Time is up: ${label}.`;
  setStatus(`Time is up: ${label}`, "chosen", true);
}

// ---------- the paywall ----------

function onLocked(message) {
  state.resuming = false;
  state.locked = message;
  leaveScene();
  ui.video.pause();
  setPhase("locked");
  showPaywall(message);
}

function showPaywall(message) {
  const episode = message.episode ?? {};
  ui.paywallEpisode.textContent = Number.isInteger(episode.number) ? `Episode ${episode.number}` : "Next episode";
  ui.paywallTitle.textContent = episode.title || "";
  ui.paywallCoins.textContent = String(message.price?.coins ?? "?");
  ui.paywallNote.textContent = "";
  ui.demoUnlock.disabled = false;
  const wasHidden = ui.paywall.hidden;
  ui.paywall.hidden = false;
  setStatus(`Episode ${episode.number ?? ""} is locked`, "locked", true);
  if (wasHidden) {
    ui.demoUnlock.hidden = true;
    probeDemoUnlock();
    ui.paywall.focus({ preventScroll: true });
  }
}

function hidePaywall() {
  ui.paywall.hidden = true;
  state.demo = null;
}

// The demo route is off unless the server enables it; it answers 404 or 403 then, and the button stays hidden.
async function mintDemoEntitlement() {
  const session = load(sessionKey(state.storyId));
  if (!session) return { off: true };
  const response = await fetch(endpoint("v1/demo/entitlements"), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ session }),
  });
  if (response.status === 404 || response.status === 403) return { off: true };
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const { entitlement } = await response.json();
  if (typeof entitlement !== "string") throw new Error("no entitlement in the answer");
  return { entitlement };
}

async function probeDemoUnlock() {
  const locked = state.locked;
  try {
    const minted = await mintDemoEntitlement();
    if (state.locked !== locked) return;
    if (minted.off) return;
    state.demo = { entitlement: minted.entitlement, at: performance.now() };
    ui.demoUnlock.hidden = false;
  } catch {
    if (state.locked === locked) ui.demoUnlock.hidden = false; // a passing failure: let the viewer try
  }
}

async function demoUnlock() {
  if (state.phase !== "locked") return;
  ui.demoUnlock.disabled = true;
  ui.paywallNote.textContent = "Unlocking…";
  try {
    let entitlement = state.demo && performance.now() - state.demo.at < DEMO_TOKEN_FRESH_MS ? state.demo.entitlement : null;
    state.demo = null; // one use each
    if (!entitlement) {
      const minted = await mintDemoEntitlement();
      if (minted.off) {
        ui.demoUnlock.hidden = true;
        ui.paywallNote.textContent = "Unlocking is not available on this server.";
        return;
      }
      entitlement = minted.entitlement;
    }
    if (!send({ type: "unlock", entitlement })) throw new Error("not connected");
  } catch (error) {
    ui.demoUnlock.disabled = false;
    ui.paywallNote.textContent = `Could not unlock (${error.message}).`;
  }
}

ui.demoUnlock.addEventListener("click", demoUnlock);
ui.paywallBack.addEventListener("click", () => backToPicker());

// ---------- the end ----------

function showEnding() {
  setPhase("ending");
  stopClock();
  ui.choices.hidden = true;
  ui.endingScene.textContent = state.scene?.title ?? "";
  ui.ending.hidden = false;
  setStatus("The End", "ending", true);
  store(sessionKey(state.storyId), null);
  store(progressKey(state.storyId), null);
  closeConnection();
  ui.playAgain.focus({ preventScroll: true });
}

function backToPicker() {
  closeConnection();
  ui.video.pause();
  leaveScene();
  hidePaywall();
  state.locked = null;
  setPhase("idle");
  const url = new URL(location.href);
  url.searchParams.delete("story");
  history.replaceState(null, "", url);
  show("picker");
  loadStories();
}

ui.playAgain.addEventListener("click", () => openStory(state.storyId, { fresh: true }));
ui.otherStories.addEventListener("click", backToPicker);
ui.back.addEventListener("click", backToPicker);

// ---------- boot ----------

if (AUTOSTART) {
  openStory(AUTOSTART); // with the persona saved for it, if any
  fetch(endpoint("v1/stories"))
    .then((r) => (r.ok ? r.json() : { stories: [] }))
    .then(({ stories = [] }) => {
      for (const s of stories) state.stories.set(s.id, s);
      const title = state.stories.get(AUTOSTART)?.title;
      if (title && state.storyId === AUTOSTART) ui.storyTitle.textContent = title;
    })
    .catch(() => {});
} else {
  show("picker");
  loadStories();
}
