// Fieldsight mentor page: sign in, pick a room, watch the worker's view with vision overlays
// aligned to each frame, talk, and draw ink that goes to the headset.
//
// No build step and nothing from the network: plain ES modules served by the Fieldsight server.
// Tests and benchmarks read `window.fieldsight` (counters, state, latency ring) and may call
// `fieldsight.drawStroke(tool, points)`. `?debug=1` reads the synthetic source's frame counter
// from the pixels of every frame.

import { COLOURS, InkChannel, InkInput, InkStore, LINE_WIDTH, strokeId } from "./ink.js";
import { RoomPicker, clearAuth, loadAuth, login } from "./lobby.js";
import { RoomSession } from "./session.js";
import { LiveView, STALE_MS } from "./view.js";

const STATS_REFRESH_MS = 1000;
const VIDEO_QUIET_MS = 1500; // no frame for this long = "waiting for the worker's video"
// The server analyses the worker's video (overlays keep coming) but none of it reaches this page:
// the media path is broken, and a new peer connection is the only repair (aiortc has no ICE
// restart). Overlays without frames for STUCK_MS, and not more often than every 15 s.
const STUCK_MS = 3000;
const STUCK_OVERLAYS = 3;
const AUTO_RECONNECT_GAP_MS = 15_000;

const params = new URLSearchParams(location.search);
const DEBUG = params.get("debug") === "1";

const $ = (id) => document.getElementById(id);

const app = {
  auth: null,
  view: "signed-out",
  session: null,
  joinParams: null,
  participants: new Map(),
  microphone: null,
  statsTimer: 0,
  lastError: null,
  mediaReconnects: 0,
  lastAutoReconnect: -Infinity,
  videoText: "—",
  audioText: "—",
};

// --- small helpers -----------------------------------------------------------------------------

function show(view) {
  app.view = view;
  $("view-login").hidden = view !== "signed-out";
  $("view-lobby").hidden = view !== "lobby";
  $("view-room").hidden = view !== "room";
  $("user-box").hidden = view === "signed-out";
  if (view === "lobby") picker.start();
  else picker.stop();
}

function log(text, kind = "") {
  const item = document.createElement("li");
  if (kind) item.className = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  item.append(time, text);
  const list = $("log");
  list.prepend(item);
  while (list.children.length > 80) list.lastChild.remove();
}

function setError(error) {
  app.lastError = { code: error.code, message: error.message, id: error.id ?? null, at: Date.now() };
  log(`${error.message}${error.code ? ` (${error.code})` : ""}`, "error");
}

// --- sign in and room picker -------------------------------------------------------------------

const picker = new RoomPicker({
  token: () => app.auth.access_token,
  onJoin: (room, role) => {
    app.joinParams = { room, role };
    enterRoom();
  },
  onExpired: (reason) =>
    signOut(`Your sign-in is no longer valid (${reason}). Please sign in again.`),
});

function signedIn(auth) {
  app.auth = auth;
  $("user-name").textContent = auth.display_name || auth.username;
  $("user-role").textContent = auth.role;
  $("review-link").hidden = !["mentor", "trainer", "admin"].includes(auth.role);
  picker.setAccountRole(auth.role);
  show("lobby");
}

function signOut(message) {
  leaveRoom({ quiet: true });
  app.auth = null;
  clearAuth();
  show("signed-out");
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("login-password").value = "";
  $("login-username").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  const error = $("login-error");
  error.hidden = true;
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    return;
  }
  const button = $("login-submit");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    const auth = await login(username, password);
    $("login-password").value = "";
    signedIn(auth);
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

// --- in a room ---------------------------------------------------------------------------------

const store = new InkStore(() => {
  view.requestRender();
  updateInkStatus();
});
const view = new LiveView($("video"), $("overlay-canvas"), {
  ink: store,
  debug: DEBUG,
  onFrame: () => {
    if (DEBUG) updateDebug();
  },
});
for (const box of document.querySelectorAll("#layers input[data-layer]")) {
  box.addEventListener("change", () => {
    view.layers[box.dataset.layer] = box.checked;
    view.requestRender();
  });
}
const input = new InkInput($("overlay-canvas"), view, store, {
  begin: () => {
    const pts = view.currentPts();
    if (pts === null) log("There is no video frame to draw on yet.", "error");
    return pts;
  },
  finish: (stroke) => ink.send(stroke),
});
const ink = new InkChannel(store, {
  send: (message) => Boolean(app.session && app.session.sendAnnotation(message)),
  onError: (error) => setError(error),
});

async function openMicrophone() {
  if (app.microphone && app.microphone.readyState === "live") return app.microphone;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    log("No microphone access in this browser: you can listen but not talk.");
    return null;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    app.microphone = stream.getAudioTracks()[0] || null;
  } catch (err) {
    log(`Microphone unavailable (${err.name}: ${err.message}): you can listen but not talk.`);
    app.microphone = null;
  }
  return app.microphone;
}

async function enterRoom() {
  const { room, role } = app.joinParams;
  $("room-title").textContent = room;
  $("room-role").textContent = role;
  $("reconnect").hidden = true;
  $("stage-message").textContent = "Connecting…";
  show("room");
  setupTools(role);
  const microphone = role === "mentor" ? await openMicrophone() : null;
  if (app.view !== "room" || app.session) {
    // Left (or signed out) while the browser asked for the microphone.
    if (microphone && app.view !== "room") {
      microphone.stop();
      app.microphone = null;
    }
    return;
  }
  const micButton = $("mic-toggle");
  micButton.hidden = !microphone;
  if (microphone) setMic(microphone.enabled);

  const session = new RoomSession({
    token: app.auth.access_token,
    room,
    role,
    microphone,
    log: (text, kind) => log(text, kind),
  });
  app.session = session;
  app.participants = new Map();
  session.addEventListener("state", () => updateConnection());
  session.addEventListener("joined", (e) => {
    showRecording(e.detail.recording);
    for (const p of e.detail.participants) app.participants.set(p.id, p);
    log(`Joined ${e.detail.room} as ${e.detail.role}.`, "ok");
    renderPeople();
  });
  session.addEventListener("participant", (e) => onParticipant(e.detail));
  session.addEventListener("video", (e) => {
    try {
      view.attach(e.detail);
    } catch (err) {
      setError({ code: "unsupported_browser", message: err.message });
    }
  });
  session.addEventListener("audio", (e) => playAudio(e.detail));
  session.addEventListener("overlay", (e) => view.addOverlay(e.detail));
  session.addEventListener("annotation", (e) => {
    if (e.detail.type === "recording") {
      showRecording(e.detail);
      log(`Recording ${e.detail.on ? "on" : "off"}: ${e.detail.reason}.`, e.detail.on ? "ok" : "");
      return;
    }
    ink.onMessage(e.detail);
  });
  session.addEventListener("servererror", (e) => setError(e.detail));
  session.addEventListener("closed", (e) => onClosed(session, e.detail));
  session.start();
  clearInterval(app.statsTimer);
  app.statsTimer = setInterval(() => refreshStats(session), STATS_REFRESH_MS);
  updateConnection();
}

function setupTools(role) {
  const canDraw = role === "mentor";
  for (const el of document.querySelectorAll("#tools button")) {
    if (el.dataset.title === undefined) el.dataset.title = el.title;
    el.disabled = !canDraw && el.id !== "clear-ink";
    el.title = el.disabled ? "Observers cannot draw" : el.dataset.title;
  }
  const note = $("tools-note");
  note.hidden = canDraw;
  note.textContent = canDraw ? "" : "Observers watch only: join as a mentor to draw.";
  input.setEnabled(canDraw);
}

function setTool(tool) {
  input.tool = tool;
  for (const el of document.querySelectorAll("#tools [data-tool]")) {
    el.setAttribute("aria-pressed", String(el.dataset.tool === tool));
  }
}

function setColour(colour) {
  input.color = colour;
  for (const el of document.querySelectorAll(".swatch")) {
    el.setAttribute("aria-checked", String(el.dataset.colour === colour));
  }
}

function setMic(on) {
  if (app.microphone) app.microphone.enabled = on;
  const button = $("mic-toggle");
  button.textContent = on ? "Mic on" : "Mic muted";
  button.setAttribute("aria-pressed", String(on));
}

function playAudio(track) {
  const audio = $("remote-audio");
  audio.srcObject = new MediaStream([track]);
  audio.play().catch(() => {
    log("The browser blocked the room's sound: click anywhere on the page to hear it.");
    document.addEventListener("click", () => audio.play().catch(() => {}), { once: true });
  });
}

function onParticipant(detail) {
  if (detail.joined) {
    const p = detail.joined;
    app.participants.set(p.id, p);
    log(`${p.display_name} joined as ${p.role}.`);
  } else {
    const p = app.participants.get(detail.left);
    app.participants.delete(detail.left);
    if (p) log(`${p.display_name} (${p.role}) left.`);
    if (p && p.role === "worker") {
      view.overlays = [];
      view.current = null;
      view.requestRender();
    }
  }
  renderPeople();
  updateConnection();
}

function renderPeople() {
  const me = app.session && app.session.joined ? app.session.joined.participant_id : null;
  $("people").replaceChildren(
    ...[...app.participants.values()].map((p) => {
      const item = document.createElement("li");
      item.append(p.display_name);
      if (p.id === me) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = "(you)";
        item.append(you);
      }
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = p.role;
      item.append(badge);
      return item;
    }),
  );
}

function hasWorker() {
  return [...app.participants.values()].some((p) => p.role === "worker");
}

function videoFlowing() {
  return view.lastFrameAt > 0 && performance.now() - view.lastFrameAt < VIDEO_QUIET_MS;
}

/** The one-word state for tests, and the words for people. */
function overallState() {
  const s = app.session;
  if (app.view === "signed-out") return "signed-out";
  if (!s) return "lobby";
  if (s.closed) return "disconnected";
  if (s.peerState === "failed") return "failed";
  if (s.peerState === "connected") return videoFlowing() ? "live" : "connected";
  return "connecting";
}

function updateConnection() {
  const s = app.session;
  if (!s) return;
  const state = overallState();
  $("st-signaling").textContent = s.signaling;
  $("st-ice").textContent = s.iceState;
  $("st-peer").textContent = s.peerState;
  const summary = $("conn-summary");
  const dot = $("live-dot");
  let words;
  let tone;
  let stage = "";
  if (state === "live") {
    words = "Live";
    tone = "ok";
  } else if (state === "connected") {
    tone = "warn";
    if (hasWorker()) {
      words = "Connected · waiting for the worker's video";
      stage = "Waiting for the worker's video…";
    } else {
      words = "Connected · no worker in the room";
      stage = "Waiting for the worker's video: nobody is streaming into this room yet.";
    }
  } else if (state === "connecting") {
    tone = "warn";
    words =
      s.signaling === "connecting" ? "Connecting to the server…" : "Setting up the media connection…";
    stage = "Connecting…";
    if (s.peerState === "disconnected") {
      words = "Media connection interrupted; trying to recover…";
      stage = words;
    }
  } else if (state === "failed") {
    tone = "bad";
    words = "The media connection failed.";
    stage = "The media connection failed. Reconnect to try again.";
  } else {
    tone = "bad";
    words = `Disconnected: ${s.closeWords || "the connection closed"}`;
    stage = words;
  }
  summary.textContent = words;
  summary.className = `conn-summary ${tone}`;
  dot.className = `live-dot ${tone}`;
  $("stage-message").textContent = stage;
  $("stage").classList.toggle("stalled", state !== "live");
  $("reconnect").hidden = !(state === "disconnected" || state === "failed");
  $("mic-toggle").hidden = !s.microphone || state === "disconnected";
  let video = hasWorker() ? "waiting for the worker's video" : "no worker in the room";
  if (state === "live") video = app.videoText;
  $("st-video").textContent = video;
  $("st-audio").textContent = app.audioText;
  updateVisionStatus();
}

function updateVisionStatus() {
  const live = overallState() === "live";
  const d = live ? view.lastDrawn : null;
  const last = view.lastOverlay;
  if (!live) {
    $("st-overlay").textContent = "no video";
  } else if (!last) {
    $("st-overlay").textContent = "none yet";
  } else if (!d) {
    const received = view.counters.overlaysReceived;
    $("st-overlay").textContent = `${received} received, none for the frame on screen`;
  } else {
    const older = `${Math.round(d.ageMs)} ms older than the frame${d.stale ? " (stale)" : ""}`;
    $("st-overlay").textContent = d.exact ? "this frame" : older;
  }
  const markers = d ? d.markerIds : [];
  $("st-markers").textContent = markers.length
    ? markers.map((id) => `#${id}`).join(", ")
    : "none in view";
  const persons = (d && view.current && view.current.overlay.persons) || [];
  $("st-people").textContent = persons.length
    ? persons.map((p) => (p.risk ? `${p.id}: REBA ${p.risk.score} (${p.risk.level})` : `${p.id}`)).join(", ")
    : "none in view";
}

function updateInkStatus() {
  const { pending, confirmed, others } = store.counts();
  const parts = [];
  if (confirmed) parts.push(`${confirmed} confirmed`);
  if (pending) parts.push(`${pending} sending`);
  if (others) parts.push(`${others} from others`);
  $("st-ink").textContent = parts.length ? parts.join(", ") : "none";
}

async function refreshStats(session) {
  if (session !== app.session || session.closed) return;
  updateConnection();
  const report = await session.stats();
  if (!report) return;
  let video = null;
  let audio = null;
  const codecs = new Map();
  report.forEach((s) => {
    if (s.type === "codec") codecs.set(s.id, s.mimeType);
    if (s.type === "inbound-rtp" && s.kind === "video") video = s;
    if (s.type === "inbound-rtp" && s.kind === "audio") audio = s;
  });
  if (video && video.frameWidth) {
    const codec = (codecs.get(video.codecId) || "").replace("video/", "");
    const fps = video.framesPerSecond ? `${Math.round(video.framesPerSecond)} fps` : "";
    app.videoText = [`${video.frameWidth}×${video.frameHeight}`, fps, codec].filter(Boolean).join(" · ");
  }
  let mic = "no mic";
  if (app.microphone && session.microphone) mic = app.microphone.enabled ? "mic on" : "mic muted";
  app.audioText = `${audio && audio.packetsReceived ? "hearing the room" : "waiting"} · ${mic}`;
  updateConnection();
}

function onClosed(session, detail) {
  session.closeWords = detail.words;
  if (session !== app.session) return; // an earlier visit (left or replaced by a reconnect)
  clearInterval(app.statsTimer);
  ink.failAll(detail.words);
  if (detail.byUs) return;
  app.lastError = { code: `close_${detail.code}`, message: detail.words, id: null, at: Date.now() };
  log(`Disconnected: ${detail.words}`, "error");
  if (detail.code === 4001) {
    signOut(`The server ended the session: ${detail.words}. Please sign in again.`);
    return;
  }
  view.detach();
  updateConnection();
}

function leaveRoom({ quiet = false } = {}) {
  const session = app.session;
  app.session = null;
  clearInterval(app.statsTimer);
  if (session) session.leave();
  else if (app.view !== "room") return;
  view.detach();
  view.lastOverlay = null;
  view.lastDrawn = null;
  view.lastFrameAt = 0;
  store.clear();
  $("remote-audio").srcObject = null;
  if (app.microphone) {
    app.microphone.stop();
    app.microphone = null;
  }
  if (!quiet) {
    log("You left the room.");
    show("lobby");
  }
}

function healStuckVideo() {
  if (overallState() !== "connected" || !hasWorker()) return;
  if (view.overlaysSinceFrame < STUCK_OVERLAYS) return;
  if (performance.now() - view.overlaysWithoutFramesSince < STUCK_MS) return;
  if (performance.now() - app.lastAutoReconnect < AUTO_RECONNECT_GAP_MS) return;
  app.lastAutoReconnect = performance.now();
  app.mediaReconnects += 1;
  log(
    "The server analyses the worker's video but none reaches this page: reconnecting the media.",
    "error",
  );
  reconnect();
}

function reconnect() {
  if (!app.joinParams) return;
  if (app.session) {
    app.session.leave();
    app.session = null;
  }
  view.detach();
  log("Reconnecting…");
  enterRoom();
}

// --- the test and benchmark handle ------------------------------------------------------------

function exposeHandle() {
  const handle = {};
  const getters = {
    framesDecoded: () => view.counters.framesDecoded,
    overlaysReceived: () => view.counters.overlaysReceived,
    overlaysDrawn: () => view.counters.overlaysDrawn,
    overlaysMatched: () => view.counters.overlaysMatched,
    lastDrawn: () =>
      view.lastDrawn ? { ...view.lastDrawn, markerIds: [...view.lastDrawn.markerIds] } : null,
    lastFrameCode: () => view.lastFrameCode,
    lastRtpTimestamp: () => view.frameTs,
    strokesSent: () => ink.counters.strokesSent,
    strokesAcked: () => ink.counters.strokesAcked,
    strokesReceived: () => ink.counters.strokesReceived,
    state: () => overallState(),
    lastError: () => (app.lastError ? { ...app.lastError } : null),
    latency: () => view.latency.map((entry) => ({ ...entry })),
    participantId: () => (app.session && app.session.joined ? app.session.joined.participant_id : null),
    staleAfterMs: () => STALE_MS,
    mediaReconnects: () => app.mediaReconnects,
  };
  for (const [name, get] of Object.entries(getters)) {
    Object.defineProperty(handle, name, { get, enumerable: true });
  }
  Object.defineProperty(handle, "readFrameCode", {
    get: () => view.readFrameCode,
    set: (on) => {
      view.readFrameCode = Boolean(on);
    },
    enumerable: true,
  });
  /** The receiver's inbound-rtp statistics for video and audio (WebRTC getStats). */
  handle.stats = async () => {
    const report = app.session ? await app.session.stats() : null;
    const out = { video: null, audio: null };
    if (report) {
      report.forEach((s) => {
        if (s.type === "inbound-rtp") out[s.kind] = { ...s };
      });
    }
    return out;
  };
  handle.drawStroke = (tool, points, { color = input.color, width = LINE_WIDTH } = {}) => {
    const pts = view.currentPts();
    return ink.send({
      id: strokeId(),
      pts: pts ?? 0,
      tool,
      points: points.map((p) => [Number(p[0]), Number(p[1])]),
      color,
      width,
    });
  };
  Object.freeze(handle);
  Object.defineProperty(window, "fieldsight", { value: handle, enumerable: true });
}

// --- debug -------------------------------------------------------------------------------------

function updateDebug() {
  const c = view.counters;
  $("debug-text").textContent = [
    `frame code   ${view.lastFrameCode ?? "—"}`,
    `rtp ts       ${view.frameTs ?? "—"}`,
    `frames       ${c.framesDecoded}`,
    `overlays     ${c.overlaysReceived} received, ${c.overlaysDrawn} drawn, ${c.overlaysMatched} exact`,
    `strokes      ${ink.counters.strokesSent} sent, ${ink.counters.strokesAcked} acked`,
  ].join("\n");
  const hud = $("stage-hud");
  hud.textContent = `#${view.lastFrameCode ?? "—"} · rtp ${view.frameTs ?? "—"}`;
}

// --- wiring ------------------------------------------------------------------------------------

function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => signOut(""));
  $("leave").addEventListener("click", () => leaveRoom());
  $("reconnect").addEventListener("click", reconnect);
  $("mic-toggle").addEventListener("click", () => setMic(!(app.microphone && app.microphone.enabled)));
  $("clear-ink").addEventListener("click", () => store.clear());
  for (const el of document.querySelectorAll("#tools [data-tool]")) {
    el.addEventListener("click", () => setTool(el.dataset.tool));
  }
  const swatches = $("swatches");
  for (const [colour, name] of COLOURS) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "swatch";
    button.dataset.colour = colour;
    button.style.setProperty("--c", colour);
    button.setAttribute("role", "radio");
    button.setAttribute("aria-label", name);
    button.title = name;
    button.addEventListener("click", () => setColour(colour));
    swatches.append(button);
  }
  setColour(COLOURS[0][0]);
  document.addEventListener("keydown", (e) => {
    if (app.view !== "room" || !input.enabled || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest("input, textarea")) return;
    if (e.key === "p") setTool("pen");
    else if (e.key === "a") setTool("arrow");
    else if (e.key === "c") store.clear();
  });
  window.addEventListener("beforeunload", () => {
    if (app.session) app.session.leave();
  });
  if (params.get("room")) $("room-name").value = params.get("room");
  $("debug-panel").hidden = !DEBUG;
  $("stage-hud").hidden = !DEBUG;
  exposeHandle();
  setInterval(() => {
    if (app.view !== "room") return;
    updateConnection();
    healStuckVideo();
  }, 500);

  const auth = loadAuth();
  if (auth) signedIn(auth);
  else show("signed-out");
}

init();

// Whether the session is being recorded, always in sight: the worker's consent decides.
function showRecording(state) {
  const badge = document.getElementById("rec-badge");
  if (!badge) return;
  const on = Boolean(state && state.on);
  badge.textContent = on ? "\u25CF Recording" : "Not recorded";
  badge.classList.toggle("on", on);
  badge.title = state ? state.reason : "the server did not say";
}
