// Fieldsight mentor page: sign in, pick a room, watch the worker's view with vision overlays
// aligned to each frame, talk, and draw ink that goes to the headset.
//
// No build step and nothing from the network: plain ES modules served by the Fieldsight server.
// Tests and benchmarks read `window.fieldsight` (counters, state, latency ring) and may call
// `fieldsight.drawStroke(tool, points)`. `?debug=1` reads the synthetic source's frame counter
// from the pixels of every frame.

import { COLOURS, InkInput, InkStore, LINE_WIDTH, strokeId } from "./ink.js";
import { RoomSession } from "./session.js";
import { LiveView, STALE_MS } from "./view.js";

const AUTH_KEY = "fieldsight.auth";
const ROOMS_REFRESH_MS = 3000;
const STATS_REFRESH_MS = 1000;
const VIDEO_QUIET_MS = 1500; // no frame for this long = "waiting for the worker's video"
const REPLY_TIMEOUT_MS = 5000;

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
  roomsTimer: 0,
  statsTimer: 0,
  lastError: null,
  counters: { strokesSent: 0, strokesAcked: 0, strokesReceived: 0 },
  replies: new Map(), // stroke id -> resolve()
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
  if (view === "lobby") startRoomPolling();
  else stopRoomPolling();
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

function roundUv([u, v]) {
  return [Math.round(u * 1e5) / 1e5, Math.round(v * 1e5) / 1e5];
}

// --- sign in -----------------------------------------------------------------------------------

function loadAuth() {
  try {
    const auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
    if (auth && auth.access_token && auth.expires_at * 1000 > Date.now() + 30_000) return auth;
  } catch {
    /* a broken entry is the same as none */
  }
  sessionStorage.removeItem(AUTH_KEY);
  return null;
}

function signedIn(auth) {
  app.auth = auth;
  $("user-name").textContent = auth.display_name || auth.username;
  $("user-role").textContent = auth.role;
  setupRoleChoice(auth.role);
  show("lobby");
}

function signOut(message) {
  leaveRoom({ quiet: true });
  app.auth = null;
  sessionStorage.removeItem(AUTH_KEY);
  show("signed-out");
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("login-password").value = "";
  $("login-username").focus();
}

async function readError(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch {
    /* not JSON */
  }
  return `${response.status} ${response.statusText}`;
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
    const response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) {
      const detail = await readError(response);
      const what = response.status === 401 ? "Sign-in refused" : "Sign-in failed";
      throw new Error(`${what}: ${detail}.`);
    }
    const auth = await response.json();
    sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
    $("login-password").value = "";
    signedIn(auth);
  } catch (err) {
    error.textContent =
      err instanceof TypeError ? `The server cannot be reached (${err.message}).` : err.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${app.auth.access_token}` },
  });
  if (response.status === 401) {
    signOut(`Your sign-in is no longer valid (${await readError(response)}). Please sign in again.`);
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(await readError(response));
  return response.json();
}

// --- room picker -------------------------------------------------------------------------------

function setupRoleChoice(accountRole) {
  const mentor = document.querySelector('input[name="role"][value="mentor"]');
  const observer = document.querySelector('input[name="role"][value="observer"]');
  const note = $("join-note");
  mentor.disabled = false;
  observer.disabled = false;
  $("join-submit").disabled = false;
  note.hidden = true;
  if (accountRole === "trainer") {
    mentor.disabled = true;
    observer.checked = true;
    note.textContent = "Trainer accounts join live sessions as observers.";
    note.hidden = false;
  } else if (accountRole === "worker") {
    mentor.disabled = true;
    observer.disabled = true;
    $("join-submit").disabled = true;
    note.textContent = "A worker account streams from a headset; this page is for mentors and observers.";
    note.hidden = false;
  }
}

function startRoomPolling() {
  if (app.roomsTimer) return;
  refreshRooms();
  app.roomsTimer = setInterval(refreshRooms, ROOMS_REFRESH_MS);
}

function stopRoomPolling() {
  clearInterval(app.roomsTimer);
  app.roomsTimer = 0;
}

async function refreshRooms() {
  if (!app.auth) return;
  const status = $("rooms-status");
  let rooms;
  try {
    rooms = await api("/api/rooms");
  } catch (err) {
    if (app.auth) status.textContent = `could not load rooms: ${err.message}`;
    return;
  }
  status.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  const list = $("room-list");
  list.replaceChildren(
    ...rooms.map((room) => {
      const item = document.createElement("li");
      item.className = "room-item";
      const dot = document.createElement("span");
      dot.className = `status-dot${room.has_worker ? " live" : ""}`;
      const text = document.createElement("div");
      text.className = "grow";
      const name = document.createElement("div");
      name.className = "room-name";
      name.textContent = room.room;
      const meta = document.createElement("div");
      meta.className = "room-meta";
      const people = room.participants.map((p) => `${p.display_name} (${p.role})`).join(", ");
      meta.textContent = `${room.has_worker ? "worker streaming" : "no worker"} · ${people || "empty"}`;
      text.append(name, meta);
      const join = document.createElement("button");
      join.type = "button";
      join.className = "btn small";
      join.textContent = "Join";
      join.disabled = $("join-submit").disabled;
      join.addEventListener("click", () => {
        $("room-name").value = room.room;
        joinRoom();
      });
      item.append(dot, text, join);
      return item;
    }),
  );
  $("rooms-empty").hidden = rooms.length > 0;
}

function selectedRole() {
  return document.querySelector('input[name="role"]:checked').value;
}

async function joinRoom() {
  const error = $("join-error");
  error.hidden = true;
  const room = $("room-name").value.trim();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(room)) {
    error.textContent = "A room name is 1 to 64 letters, digits, dots, dashes or underscores.";
    error.hidden = false;
    return;
  }
  app.joinParams = { room, role: selectedRole() };
  await enterRoom();
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
const input = new InkInput($("overlay-canvas"), view, store, {
  begin: () => {
    const pts = view.currentPts();
    if (pts === null) log("There is no video frame to draw on yet.", "error");
    return pts;
  },
  finish: (stroke) => sendStroke(stroke),
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
    for (const p of e.detail.participants) app.participants.set(p.id, p);
    log(`Joined ${e.detail.room} as ${e.detail.role}.`, "ok");
    renderPeople();
  });
  session.addEventListener("participant", (e) => onParticipant(e.detail));
  session.addEventListener("video", (e) => view.attach(e.detail));
  session.addEventListener("audio", (e) => playAudio(e.detail));
  session.addEventListener("overlay", (e) => view.addOverlay(e.detail));
  session.addEventListener("annotation", (e) => onAnnotation(e.detail));
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
    words = s.signaling === "connecting" ? "Connecting to the server…" : "Setting up the media connection…";
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
  $("reconnect").hidden = !(state === "disconnected" || state === "failed");
  $("st-video").textContent = state === "live" ? app.videoText : hasWorker() ? "waiting for the worker's video" : "no worker in the room";
  $("st-audio").textContent = app.audioText;
  updateVisionStatus();
}

function updateVisionStatus() {
  const d = view.lastDrawn;
  const last = view.lastOverlay;
  if (!last) {
    $("st-overlay").textContent = "none yet";
  } else if (!d) {
    $("st-overlay").textContent = `${view.counters.overlaysReceived} received, none for the frame on screen`;
  } else {
    const age = d.exact ? "this frame" : `${Math.round(d.ageMs)} ms older than the frame${d.stale ? " (stale)" : ""}`;
    $("st-overlay").textContent = age;
  }
  const markers = d ? d.markerIds : [];
  $("st-markers").textContent = markers.length ? markers.map((id) => `#${id}`).join(", ") : "none in view";
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
  const mic = app.microphone && session.microphone ? (app.microphone.enabled ? "mic on" : "mic muted") : "no mic";
  app.audioText = `${audio && audio.packetsReceived ? "hearing the room" : "waiting"} · ${mic}`;
  updateConnection();
}

function onClosed(session, detail) {
  session.closeWords = detail.words;
  clearInterval(app.statsTimer);
  for (const resolve of app.replies.values()) resolve({ type: "error", code: "closed", message: detail.words });
  app.replies.clear();
  if (detail.byUs) return;
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
  if (!session) return;
  app.session = null;
  clearInterval(app.statsTimer);
  session.leave();
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

// --- ink on the wire ---------------------------------------------------------------------------

/** Send a stroke: shown at once (pending), confirmed on ack. Resolves with the server's reply. */
function sendStroke(stroke) {
  stroke.status = "pending";
  stroke.own = true;
  stroke.points = stroke.points.map(roundUv);
  store.add(stroke);
  const message = {
    type: "stroke",
    id: stroke.id,
    pts: stroke.pts,
    tool: stroke.tool,
    points: stroke.points,
    color: stroke.color,
    width: stroke.width,
    t_sent_ms: Date.now(),
  };
  return new Promise((resolve) => {
    const session = app.session;
    if (!session || !session.sendAnnotation(message)) {
      const error = { type: "error", code: "not_connected", message: "the ink channel is not open; the stroke was not sent", id: stroke.id };
      setError(error);
      store.reject(stroke.id);
      resolve(error);
      return;
    }
    app.counters.strokesSent += 1;
    app.replies.set(stroke.id, resolve);
    setTimeout(() => {
      if (app.replies.delete(stroke.id)) resolve({ type: "timeout", id: stroke.id });
    }, REPLY_TIMEOUT_MS);
  });
}

function onAnnotation(message) {
  if (message.type === "ack") {
    if (store.confirm(message.id, message.seq)) app.counters.strokesAcked += 1;
    const resolve = app.replies.get(message.id);
    app.replies.delete(message.id);
    if (resolve) resolve(message);
  } else if (message.type === "error") {
    setError({ ...message, message: `Ink refused: ${message.message}` });
    if (message.id) {
      store.reject(message.id);
      const resolve = app.replies.get(message.id);
      app.replies.delete(message.id);
      if (resolve) resolve(message);
    }
  } else if (message.type === "stroke") {
    app.counters.strokesReceived += 1;
    store.add({ ...message, own: false, status: "confirmed" });
  }
}

// --- the test and benchmark handle ------------------------------------------------------------

function exposeHandle() {
  const handle = {};
  const getters = {
    framesDecoded: () => view.counters.framesDecoded,
    overlaysReceived: () => view.counters.overlaysReceived,
    overlaysDrawn: () => view.counters.overlaysDrawn,
    overlaysMatched: () => view.counters.overlaysMatched,
    lastDrawn: () => (view.lastDrawn ? { ...view.lastDrawn, markerIds: [...view.lastDrawn.markerIds] } : null),
    lastFrameCode: () => view.lastFrameCode,
    lastRtpTimestamp: () => view.frameTs,
    strokesSent: () => app.counters.strokesSent,
    strokesAcked: () => app.counters.strokesAcked,
    strokesReceived: () => app.counters.strokesReceived,
    state: () => overallState(),
    lastError: () => (app.lastError ? { ...app.lastError } : null),
    latency: () => view.latency.map((entry) => ({ ...entry })),
    participantId: () => (app.session && app.session.joined ? app.session.joined.participant_id : null),
    staleAfterMs: () => STALE_MS,
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
  handle.drawStroke = (tool, points, { color = input.color, width = LINE_WIDTH } = {}) => {
    const pts = view.currentPts();
    return sendStroke({
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
    `strokes      ${app.counters.strokesSent} sent, ${app.counters.strokesAcked} acked`,
  ].join("\n");
  const hud = $("stage-hud");
  hud.textContent = `#${view.lastFrameCode ?? "—"} · rtp ${view.frameTs ?? "—"}`;
}

// --- wiring ------------------------------------------------------------------------------------

function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    joinRoom();
  });
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
    if (app.view !== "room" || e.target.closest("input, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (!input.enabled) return;
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
    if (app.view === "room") updateConnection();
  }, 500);

  const auth = loadAuth();
  if (auth) signedIn(auth);
  else show("signed-out");
}

init();
