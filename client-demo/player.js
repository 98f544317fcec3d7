// reelfork demo player. No framework, no build step.
// Protocol: see the project docs ("/v1/play" websocket). Query parameters:
//   ?story=<id>   start (or resume) that story without showing the picker
//   ?rate=<n>     video.playbackRate, for tests and reviewers (0.25..16)
"use strict";

const params = new URLSearchParams(location.search);
const RATE = clampNumber(params.get("rate"), 1, 0.25, 16);
const AUTOSTART = params.get("story");
const PROGRESS_EVERY_MS = 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $("stage"),
  picker: $("picker"),
  storyList: $("story-list"),
  player: $("player"),
  video: $("video"),
  progress: $("progress-fill"),
  back: $("back"),
  storyTitle: $("story-title"),
  sceneTitle: $("scene-title"),
  spinner: $("spinner"),
  spinnerText: $("spinner-text"),
  tapToPlay: $("tap-to-play"),
  unmute: $("unmute"),
  choices: $("choices"),
  choiceList: $("choice-list"),
  ending: $("ending"),
  endingScene: $("ending-scene"),
  playAgain: $("play-again"),
  otherStories: $("other-stories"),
  status: $("status"),
};

const state = {
  stories: new Map(), // id -> {id, title, logline, version}
  storyId: null,
  socket: null,
  wantConnection: false, // false once the viewer left the player or reached the end
  attempts: 0,
  retryTimer: 0,
  scene: null, // the last `scene` message
  clips: new Map(), // scene id -> {url, duration}, from `clip` messages
  resuming: false, // true between sending `resume` and the first `scene` after it
  pending: null, // the choice sent and not yet answered: {choice, tries}
  retryChoiceTimer: 0,
  phase: "idle", // idle | waiting | rendering | playing | choosing | chosen | ending
  progressTimer: 0,
  countdownTimer: 0,
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

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, typeof value === "string" ? value : JSON.stringify(value));
  } catch { /* private mode or quota: sessions just won't survive a reload */ }
}

function load(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function setStatus(text, kind = "info", quiet = false) {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
  ui.status.toggleAttribute("data-quiet", quiet);
}

function setPhase(phase) {
  state.phase = phase;
  ui.stage.dataset.phase = phase;
}

function show(view) {
  ui.stage.dataset.view = view;
  ui.picker.hidden = view !== "picker";
  ui.player.hidden = view !== "player";
}

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
    const cta = document.createElement("span");
    cta.className = "cta";
    cta.textContent = load(sessionKey(story.id)) ? "Continue" : "Play";
    button.append(title, logline, cta);
    button.addEventListener("click", () => openStory(story.id));
    li.append(button);
    ui.storyList.append(li);
  }
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
  state.wantConnection = true;
  ui.storyTitle.textContent = state.stories.get(storyId)?.title ?? storyId;
  ui.sceneTitle.textContent = "";
  resetOverlays();
  ui.video.removeAttribute("src");
  ui.video.removeAttribute("data-scene");
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
    send(token ? { type: "resume", session: token } : { type: "start", story: state.storyId });
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
  stopProgress();
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
});

// ---------- protocol ----------

function handle(message) {
  switch (message.type) {
    case "session":
      state.attempts = 0;
      if (message.story && message.story !== state.storyId) return;
      store(sessionKey(state.storyId), message.session);
      setStatus("Connected", "connected", true);
      break;
    case "scene":
      onScene(message);
      break;
    case "clip":
      state.clips.set(message.scene, { url: message.url, duration: message.duration });
      if (state.scene?.scene === message.scene && state.phase === "rendering") playClip(message.url);
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
    send({ type: "start", story: state.storyId });
    return;
  }
  if (code === "not_ready" && state.phase === "chosen" && state.pending && state.pending.tries < 20) {
    // The next scene is still being written (an open node): ask again shortly.
    showSpinner("Writing what happens next…");
    const pending = state.pending;
    state.retryChoiceTimer = setTimeout(() => {
      if (state.phase !== "chosen" || state.pending !== pending) return;
      pending.tries += 1;
      send({ type: "choose", choice: pending.choice });
    }, 1500);
    return;
  }
  setStatus(message || code || "Something went wrong.", "error");
  if (state.phase === "chosen") showChoices(); // let the viewer try again
}

function onScene(scene) {
  const continuing = state.resuming && state.scene?.scene === scene.scene;
  state.resuming = false;
  state.scene = scene;
  if (scene.clip) state.clips.set(scene.scene, { url: scene.clip, duration: scene.duration });
  if (continuing) {
    // After a reconnect the server repeats the scene we are already in: carry on from here.
    if (state.phase === "rendering" && scene.clip) playClip(scene.clip);
    else if (state.phase === "chosen" && state.pending) send({ type: "choose", choice: state.pending.choice });
    else if (state.phase === "choosing" || state.phase === "chosen") showChoices();
    return;
  }
  stopCountdown();
  clearTimeout(state.retryChoiceTimer);
  state.pending = null;
  resetOverlays();
  ui.sceneTitle.textContent = scene.title || "";
  const known = state.clips.get(scene.scene);
  if (known) {
    playClip(known.url);
  } else {
    setPhase("rendering");
    ui.video.pause();
    showSpinner("Rendering…");
    setStatus(`Rendering “${scene.title || scene.scene}”…`, "rendering", true);
  }
}

// ---------- playback ----------

function playClip(url) {
  const video = ui.video;
  const scene = state.scene;
  hideSpinner();
  setPhase("playing");
  setStatus(`Playing “${scene.title || scene.scene}”`, "playing", true);
  video.dataset.scene = scene.scene;
  if (video.getAttribute("src") === url) {
    video.currentTime = 0; // the same clip again (a story loop): replay it from the start
  } else {
    video.src = url;
    const saved = safeJSON(load(progressKey(state.storyId)));
    if (saved?.scene === scene.scene && saved.position > 0) {
      video.addEventListener("loadedmetadata", () => {
        if (saved.position < (video.duration || 0) - 0.5) video.currentTime = saved.position;
      }, { once: true });
    }
  }
  video.defaultPlaybackRate = RATE;
  video.playbackRate = RATE;
  startProgress();
  tryPlay();
}

// Autoplay policy: without a user gesture (e.g. ?story=...), browsers refuse playback with sound.
// Then play muted and offer "Tap for sound"; if even that is refused, show "Tap to play".
async function tryPlay() {
  ui.tapToPlay.hidden = true;
  const video = ui.video;
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

ui.unmute.addEventListener("click", () => {
  ui.video.muted = false;
  ui.unmute.hidden = true;
  if (ui.video.paused && state.phase === "playing") tryPlay();
});

function safeJSON(text) {
  try { return JSON.parse(text ?? "null"); } catch { return null; }
}

function reportProgress() {
  const scene = state.scene?.scene;
  if (!scene || ui.video.dataset.scene !== scene) return;
  const position = Math.round(ui.video.currentTime * 1000) / 1000;
  send({ type: "progress", scene, position });
  store(progressKey(state.storyId), { scene, position });
}

function startProgress() {
  stopProgress();
  state.progressTimer = setInterval(() => {
    if (!ui.video.paused) reportProgress();
  }, PROGRESS_EVERY_MS);
}

function stopProgress() {
  clearInterval(state.progressTimer);
  state.progressTimer = 0;
}

ui.video.addEventListener("timeupdate", () => {
  const { currentTime, duration } = ui.video;
  const fraction = duration > 0 ? Math.min(1, currentTime / duration) : 0;
  ui.progress.style.transform = `scaleX(${fraction})`;
});
ui.video.addEventListener("waiting", () => {
  if (state.phase === "playing") showSpinner("Buffering…");
});
ui.video.addEventListener("playing", () => {
  hideSpinner();
  ui.tapToPlay.hidden = true;
});
ui.video.addEventListener("ended", () => {
  if (state.phase !== "playing") return;
  stopProgress();
  reportProgress();
  if (state.scene?.ending) showEnding();
  else showChoices();
});
ui.video.addEventListener("error", () => {
  if (!ui.video.getAttribute("src")) return;
  const code = ui.video.error?.code ?? "?";
  hideSpinner();
  setStatus(`This clip could not be played (media error ${code}).`, "error");
  // Do not strand the viewer: offer the choices anyway.
  if (state.phase === "playing") {
    if (state.scene?.ending) showEnding();
    else showChoices();
  }
});
ui.video.addEventListener("click", () => {
  if (state.phase !== "playing") return;
  if (ui.video.paused) tryPlay();
  else ui.video.pause();
});
ui.tapToPlay.addEventListener("click", () => {
  ui.video.muted = false; // a gesture: sound is allowed now
  ui.unmute.hidden = true;
  tryPlay();
});

// ---------- overlays ----------

function showSpinner(text) {
  ui.spinnerText.textContent = text;
  ui.spinner.hidden = false;
}

function hideSpinner() {
  ui.spinner.hidden = true;
}

function resetOverlays() {
  hideSpinner();
  ui.tapToPlay.hidden = true;
  ui.choices.hidden = true;
  ui.choiceList.replaceChildren();
  ui.ending.hidden = true;
  ui.progress.style.transform = "scaleX(0)";
}

function showChoices() {
  const scene = state.scene;
  if (!scene) return;
  setPhase("choosing");
  hideSpinner();
  ui.choiceList.replaceChildren();
  for (const choice of scene.choices ?? []) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice";
    button.setAttribute("data-testid", `choice-${choice.id}`);
    button.dataset.choice = choice.id;
    button.textContent = choice.label;
    button.addEventListener("click", () => choose(choice, button));
    ui.choiceList.append(button);
  }
  ui.choices.hidden = false;
  setStatus("What happens next?", "choosing", true);
  ui.choiceList.querySelector("button")?.focus({ preventScroll: true });
  startCountdown();
}

function choose(choice, button) {
  if (state.phase !== "choosing") return;
  stopCountdown();
  setPhase("chosen");
  state.pending = { choice: choice.id, tries: 0 };
  for (const other of ui.choiceList.querySelectorAll("button")) {
    other.disabled = true;
    other.setAttribute("aria-pressed", String(other === button));
  }
  if (send({ type: "choose", choice: choice.id })) {
    setStatus(`You chose: ${choice.label}`, "chosen");
  } else {
    // Offline: keep the choice; it is sent again once the session is resumed.
    setStatus("Reconnecting… your choice will be sent.", "reconnecting");
    reconnectNow();
  }
}

// A timed default (the story's `default` + `timeout_s`, sent by the server with the scene):
// a bar shows the time left; when it runs out the server itself takes the default choice and
// sends the next scene, so nothing is sent from here and a slow or closed tab changes nothing.
function startCountdown() {
  stopCountdown();
  const timed = state.scene?.default;
  if (!timed || !(timed.timeout_s > 0)) return;
  const bar = document.createElement("div");
  bar.className = "countdown";
  bar.setAttribute("aria-hidden", "true");
  const fill = document.createElement("div");
  fill.className = "countdown-fill";
  bar.style.setProperty("--countdown", `${timed.timeout_s}s`);
  bar.append(fill);
  ui.choiceList.append(bar);
  ui.choiceList.querySelector(`[data-choice="${CSS.escape(timed.choice)}"]`)?.classList.add("is-default");
}

function stopCountdown() {
  clearTimeout(state.countdownTimer);
  state.countdownTimer = 0;
  ui.choiceList.querySelector(".countdown")?.remove();
}


function showEnding() {
  setPhase("ending");
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
  stopCountdown();
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
  openStory(AUTOSTART);
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
