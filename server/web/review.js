// Fieldsight review page: recorded sessions, newest first, and a player that draws each recorded
// frame's vision overlay over the recorded worker video, in sync with playback.
//
// Sync: the recording's file time 0 is the frame with pts `first_pts` on the room's 90 kHz clock,
// and the file keeps the frames' own timestamps, so the frame on screen is
//   pts = first_pts + round(mediaTime * 90000)
// with mediaTime from requestVideoFrameCallback (the presented frame's own timestamp, exact, not
// the element's currentTime). Per presented frame we draw the overlay with the greatest pts <= that
// pts, in the same callback (so in the same composited frame). Overlays come from the server in
// 10 s windows around the play head. Tests and benchmarks read `window.__review`.

import { AuthExpired, apiGet, clearAuth, loadAuth, login, ROOM_PATTERN } from "./lobby.js";
import { RISK, drawAnchors, drawObjects, drawPeople, drawZones } from "./layers.js";
import { drawArrow, drawLabel } from "./view.js";

const CLOCK_HZ = 90000;
const WINDOW_TICKS = 10 * CLOCK_HZ; // overlays are fetched 10 s at a time
const KEEP_WINDOWS = 6; // windows kept either side of the play head
const MAX_OVERLAY_AGE = CLOCK_HZ; // an overlay more than 1 s older than the frame is not drawn
const INK_SHOW_TICKS = 3 * CLOCK_HZ; // mentor ink stays on screen 3 s after its frame
const SEEK_NUDGE_S = 0.001; // seek a hair past a frame's start so rounding never lands before it
const PAGE = 25;
const HISTORY_KEEP = 600;
const MARKER_COLOUR = "#00e5ff";
const AXIS_COLOURS = ["#ff453a", "#32d74b", "#0a84ff"];

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const debug = {
  state: "starting",
  sessionId: null,
  firstPts: null,
  duration: null,
  hasRecording: null,
  metadataLoaded: false,
  timelineRendered: false,
  frame: null, // {mediaTime, pts, source, code}
  shown: null, // {pts, framePts} the overlay drawn on the frame on screen
  framesShown: 0,
  history: [], // per presented frame: {framePts, mediaTime, source, overlayPts, code}
  overlaysLoaded: 0,
  windowsLoaded: 0,
  lastSeek: null,
  ready: false,
  readyMs: null, // performance.now() (ms since navigation) when the player was ready
  marks: {}, // performance.now() of: review (data loaded), timeline, metadata, frame, overlay
  readFrameCode: params.get("debug") === "1",
  errors: [],
};
window.__review = debug;

const app = { auth: null, cursor: null, player: null };

// --- sign in, and which view ---------------------------------------------------------------------

function show(view) {
  for (const name of ["login", "list", "player"]) $(`view-${name}`).hidden = name !== view;
  $("user-box").hidden = view === "login";
  debug.state = view;
}

function signedIn(auth) {
  app.auth = auth;
  $("user-name").textContent = auth.display_name || auth.username;
  $("user-role").textContent = auth.role;
  route();
}

function signOut(message) {
  closePlayer();
  app.auth = null;
  clearAuth();
  show("login");
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

async function api(path) {
  try {
    return await apiGet(path, app.auth.access_token);
  } catch (err) {
    if (err instanceof AuthExpired) signOut(`Your sign-in is no longer valid (${err.message}).`);
    throw err;
  }
}

function route() {
  const id = new URLSearchParams(location.search).get("session");
  if (id) openPlayer(id);
  else openList();
}

function navigate(query) {
  history.pushState(null, "", query ? `?${query}` : location.pathname);
  route();
}

// --- session list ----------------------------------------------------------------------------------

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

async function openList(more = false) {
  closePlayer();
  show("list");
  const error = $("list-error");
  error.hidden = true;
  if (!more) app.cursor = null;
  const query = new URLSearchParams({ limit: String(PAGE) });
  const room = $("filter-room").value.trim();
  const participant = $("filter-participant").value.trim();
  if (room) {
    if (!ROOM_PATTERN.test(room)) {
      error.textContent = "A room name is 1 to 64 letters, digits, dots, dashes or underscores.";
      error.hidden = false;
      return;
    }
    query.set("room", room);
  }
  if (participant) query.set("participant", participant);
  if (more && app.cursor) query.set("cursor", app.cursor);
  let page;
  try {
    page = await api(`/api/sessions?${query}`);
  } catch (err) {
    error.textContent = `Could not load sessions: ${err.message}`;
    error.hidden = false;
    return;
  }
  const rows = page.sessions.map(sessionRow);
  if (more) $("session-rows").append(...rows);
  else $("session-rows").replaceChildren(...rows);
  app.cursor = page.next;
  $("list-more").hidden = !page.next;
  $("list-empty").hidden = $("session-rows").children.length > 0;
}

function sessionRow(s) {
  const row = document.createElement("tr");
  row.dataset.sessionId = s.id;
  const started = new Date(s.started_at);
  const ended = s.ended_at ? new Date(s.ended_at) : null;
  const cells = [
    started.toLocaleString([], { hour12: false }),
    s.room,
    s.live ? "live" : fmtDuration((ended - started) / 1000),
    s.participants.join(", ") || "—",
    String(s.events),
  ];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  const cell = document.createElement("td");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "btn small open-session";
  open.textContent = "Review";
  open.addEventListener("click", () => navigate(`session=${s.id}`));
  cell.append(open);
  row.append(cell);
  return row;
}

// --- the player ------------------------------------------------------------------------------------

function closePlayer() {
  if (app.player) app.player.destroy();
  app.player = null;
}

async function openPlayer(sessionId) {
  closePlayer();
  show("player");
  Object.assign(debug, {
    sessionId,
    firstPts: null,
    hasRecording: null,
    metadataLoaded: false,
    timelineRendered: false,
    frame: null,
    shown: null,
    framesShown: 0,
    history: [],
    ready: false,
    readyMs: null,
    marks: {},
  });
  $("stage-message").textContent = "Loading…";
  $("stage-message").classList.remove("no-recording");
  let review;
  try {
    review = await api(`/api/sessions/${encodeURIComponent(sessionId)}/review`);
  } catch (err) {
    $("stage-message").textContent = `Could not load this session: ${err.message}`;
    debug.errors.push(err.message);
    return;
  }
  if (debug.sessionId !== sessionId) return; // navigated elsewhere meanwhile
  mark("review");
  app.player = new Player(review);
}

class Player {
  constructor(review) {
    this.review = review;
    this.video = $("video");
    this.canvas = $("overlay-canvas");
    this.ctx = this.canvas.getContext("2d");
    const v = review.video;
    this.firstPts = v && v.first_pts !== null && v.first_pts !== undefined ? v.first_pts : null;
    this.duration = v && v.duration_s ? v.duration_s : null;
    this.pts = []; // sorted pts of loaded overlays
    this.byPts = new Map();
    this.windows = new Map(); // window index -> Promise
    this.ink = review.events.filter((e) => e.type === "ink" && e.media_pts !== null);
    this.current = null; // {overlay, framePts}
    this.framePts = null;
    this.pendingSeek = false;
    this._vfc = null;
    this._listeners = [];
    this._resize = new ResizeObserver(() => {
      this.render();
      this.drawPlots();
    });
    this._resize.observe(this.canvas);
    debug.firstPts = this.firstPts;
    debug.duration = this.duration;
    debug.hasRecording = Boolean(v);
    this.renderFacts();
    this.renderTimeline();
    if (!v) {
      this.noRecording("This session has no recording: the worker did not consent, or no video was recorded.");
    } else {
      this.load(v);
    }
    this.drawPlots();
  }

  on(target, type, handler) {
    target.addEventListener(type, handler);
    this._listeners.push([target, type, handler]);
  }

  noRecording(text) {
    const message = $("stage-message");
    message.textContent = text;
    message.classList.add("no-recording");
    $("controls").classList.add("disabled");
    this.video.removeAttribute("src");
    this.video.load();
    this.render();
  }

  load(v) {
    const video = this.video;
    $("controls").classList.remove("disabled");
    $("player-status").textContent = v.status;
    if (this.firstPts === null) {
      $("stage-message").textContent =
        "The recording has not finished: its timing is not known yet, overlays are not shown.";
    }
    this.on(video, "loadedmetadata", () => {
      debug.metadataLoaded = true;
      mark("metadata");
      if (!this.duration || !Number.isFinite(this.duration)) this.duration = video.duration;
      debug.duration = this.duration;
      if (this.firstPts !== null) $("stage-message").textContent = "";
      this.drawSeekSteps();
      this.drawPlots();
      this.checkReady();
    });
    this.on(video, "error", () => {
      const code = video.error ? video.error.code : "?";
      this.noRecording(`The recording cannot be played (media error ${code}).`);
      debug.errors.push(`media error ${code}`);
    });
    this.on(video, "play", () => ($("play").textContent = "Pause"));
    this.on(video, "pause", () => ($("play").textContent = "Play"));
    this.on(video, "timeupdate", () => this.updateClock());
    this.on(video, "seeking", () => {
      this.pendingSeek = true;
    });
    this.on(video, "seeked", () => {
      // requestVideoFrameCallback normally reports the sought frame; if it does not (a
      // browser that skips it while paused), fall back to currentTime.
      setTimeout(() => {
        if (this.pendingSeek && this.video === video) this.onFrame(video.currentTime, "seeked");
      }, 150);
    });
    this.on($("play"), "click", () => (video.paused ? video.play() : video.pause()));
    this.on($("speed"), "change", () => {
      video.playbackRate = Number($("speed").value);
    });
    this.on($("seekbar"), "click", (e) => {
      const box = $("seekbar").getBoundingClientRect();
      if (this.duration) this.seek(((e.clientX - box.left) / box.width) * this.duration);
    });
    video.playbackRate = Number($("speed").value);
    const step = (now, metadata) => {
      this._vfc = video.requestVideoFrameCallback(step);
      this.onFrame(metadata.mediaTime, "rvfc");
    };
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      this._vfc = video.requestVideoFrameCallback(step);
    } else {
      this.on(video, "timeupdate", () => this.onFrame(video.currentTime, "timeupdate"));
    }
    video.src = v.url; // signed for this user and session by the review call
    if (this.firstPts !== null) this.ensureWindows(this.firstPts);
  }

  // --- time ----------------------------------------------------------------------------------------

  ptsAt(mediaTime) {
    return this.firstPts + Math.round(mediaTime * CLOCK_HZ);
  }

  seek(seconds) {
    const max = this.duration || this.video.duration || 0;
    const target = Math.min(Math.max(0, seconds + SEEK_NUDGE_S), Math.max(0, max - SEEK_NUDGE_S));
    this.video.currentTime = target;
    return target;
  }

  seekToPts(mediaPts) {
    const seconds = (mediaPts - this.firstPts) / CLOCK_HZ;
    const target = this.seek(seconds);
    debug.lastSeek = { mediaPts, seconds, target };
    if (this.firstPts !== null) this.ensureWindows(mediaPts);
  }

  onFrame(mediaTime, source) {
    this.pendingSeek = false;
    debug.framesShown += 1;
    const frame = { mediaTime, pts: null, source, code: null };
    if (debug.readFrameCode) frame.code = readFrameCode(this.video);
    if (this.firstPts !== null) {
      const pts = this.ptsAt(mediaTime);
      frame.pts = pts;
      this.framePts = pts;
      this.ensureWindows(pts);
      this.select(pts);
    }
    debug.frame = frame;
    mark("frame");
    debug.history.push({
      framePts: frame.pts,
      mediaTime,
      source,
      overlayPts: debug.shown ? debug.shown.pts : undefined,
      code: frame.code,
    });
    if (debug.history.length > HISTORY_KEEP) debug.history.splice(0, debug.history.length - HISTORY_KEEP);
    this.render();
    this.updateClock();
    this.checkReady();
  }

  /** The overlay with the greatest pts <= the frame's, once the window holding it is loaded. */
  select(framePts) {
    const k = this.windowOf(framePts);
    const loaded = this.windows.get(k);
    if (!loaded || !loaded.done) {
      this.current = null;
      debug.shown = null;
      return;
    }
    let lo = 0;
    let hi = this.pts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.pts[mid] <= framePts) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    const pts = found >= 0 ? this.pts[found] : null;
    if (pts === null || framePts - pts > MAX_OVERLAY_AGE) {
      this.current = null;
      debug.shown = { pts: null, framePts, resolved: true };
      return;
    }
    this.current = { overlay: this.byPts.get(pts), framePts };
    debug.shown = { pts, framePts, resolved: true };
    mark("overlay");
  }

  windowOf(pts) {
    return Math.floor((pts - this.firstPts) / WINDOW_TICKS);
  }

  ensureWindows(pts) {
    const k = this.windowOf(pts);
    for (const w of [k, k + 1]) {
      if (w >= 0 && !this.windows.has(w)) this.fetchWindow(w);
    }
    for (const w of [...this.windows.keys()]) {
      if (Math.abs(w - k) > KEEP_WINDOWS && this.windows.get(w).done) this.dropWindow(w);
    }
  }

  fetchWindow(k) {
    const entry = { done: false };
    this.windows.set(k, entry);
    const from = this.firstPts + k * WINDOW_TICKS;
    const to = from + WINDOW_TICKS;
    const id = encodeURIComponent(this.review.session.id);
    const load = async () => {
      let next = from;
      while (next !== null) {
        const page = await api(`/api/sessions/${id}/overlays?from_pts=${next}&to_pts=${to}&limit=2000`);
        if (next === from && page.previous) this.addOverlay(page.previous);
        for (const overlay of page.overlays) this.addOverlay(overlay);
        next = page.next_from_pts;
      }
    };
    load()
      .then(() => {
        if (this.windows.get(k) !== entry) return;
        entry.done = true;
        debug.windowsLoaded += 1;
        if (this.framePts !== null && this.windowOf(this.framePts) === k) {
          this.select(this.framePts);
          this.render();
          this.checkReady();
        }
      })
      .catch((err) => {
        this.windows.delete(k);
        debug.errors.push(`overlays ${k}: ${err.message}`);
      });
  }

  addOverlay(overlay) {
    if (this.byPts.has(overlay.pts)) return;
    this.byPts.set(overlay.pts, overlay);
    const pts = overlay.pts;
    if (!this.pts.length || pts > this.pts[this.pts.length - 1]) this.pts.push(pts);
    else {
      let i = this.pts.length;
      while (i > 0 && this.pts[i - 1] > pts) i -= 1;
      this.pts.splice(i, 0, pts);
    }
    debug.overlaysLoaded = this.byPts.size;
  }

  dropWindow(k) {
    this.windows.delete(k);
    const from = this.firstPts + k * WINDOW_TICKS;
    const to = from + WINDOW_TICKS;
    this.pts = this.pts.filter((pts) => {
      const keep = pts < from || pts >= to;
      if (!keep) this.byPts.delete(pts);
      return keep;
    });
    debug.overlaysLoaded = this.byPts.size;
  }

  checkReady() {
    if (debug.ready) return;
    const overlayOk = this.firstPts === null || (debug.shown && debug.shown.resolved);
    if (debug.metadataLoaded && debug.frame && overlayOk && debug.timelineRendered) {
      debug.ready = true;
      debug.readyMs = performance.now();
    }
  }

  // --- drawing -------------------------------------------------------------------------------------

  contentRect() {
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    const vw = this.video.videoWidth;
    const vh = this.video.videoHeight;
    if (!vw || !vh || !w || !h) return null;
    const scale = Math.min(w / vw, h / vh);
    return { x: (w - vw * scale) / 2, y: (h - vh * scale) / 2, width: vw * scale, height: vh * scale };
  }

  render() {
    const { canvas, ctx } = this;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr);
    const h = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const rect = this.contentRect();
    if (!rect || this.framePts === null) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.save();
    ctx.beginPath();
    ctx.rect(rect.x, rect.y, rect.width, rect.height);
    ctx.clip();
    const at = ([u, v]) => [rect.x + u * rect.width, rect.y + v * rect.height];
    const label = (text, x, y, background) => drawLabel(ctx, text, x, y, background);
    if (this.current) {
      const overlay = this.current.overlay;
      ctx.lineJoin = "round";
      ctx.lineCap = "round";
      drawZones(ctx, overlay.zones, overlay.events, at, label);
      drawPeople(ctx, overlay.persons, at, label);
      drawObjects(ctx, overlay.objects, at, label);
      drawAnchors(ctx, overlay.anchors, at);
      drawMarkers(ctx, overlay.markers, at);
    }
    this.drawInk(ctx, at);
    ctx.restore();
    this.updateClock();
  }

  drawInk(ctx, at) {
    for (const e of this.ink) {
      const age = this.framePts - e.media_pts;
      const p = e.payload || {};
      if (age < 0 || age > INK_SHOW_TICKS || p.anchor || !Array.isArray(p.points)) continue;
      const points = p.points.map(at);
      const colour = p.color || "#ff3b30";
      const width = Math.max(2, (p.width || 0.006) * (this.contentRect() || { width: 640 }).width);
      ctx.save();
      ctx.globalAlpha = 1 - 0.6 * (age / INK_SHOW_TICKS);
      if (p.tool === "arrow" && points.length >= 2) {
        drawArrow(ctx, points[0], points[points.length - 1], colour, width, 4 * width);
      } else if (points.length >= 2) {
        ctx.strokeStyle = colour;
        ctx.lineWidth = width;
        ctx.lineJoin = "round";
        ctx.lineCap = "round";
        ctx.beginPath();
        points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.stroke();
      }
      ctx.restore();
    }
  }

  updateClock() {
    const t = this.video.currentTime || 0;
    $("clock").textContent = `${fmtDuration(t)} / ${fmtDuration(this.duration)}`;
    const share = this.duration ? Math.min(1, t / this.duration) : 0;
    $("seek-fill").style.width = `${(share * 100).toFixed(2)}%`;
    this.drawPlayhead();
  }

  mediaTimeOf(mediaPts) {
    if (this.firstPts === null || mediaPts === null || mediaPts === undefined) return null;
    const t = (mediaPts - this.firstPts) / CLOCK_HZ;
    return t < 0 || (this.duration && t > this.duration) ? null : t;
  }

  drawSeekSteps() {
    const holder = $("seek-steps");
    holder.replaceChildren();
    if (!this.duration) return;
    for (const step of this.review.steps) {
      const t = this.mediaTimeOf(step.media_pts);
      if (t === null) continue;
      const mark = document.createElement("button");
      mark.type = "button";
      mark.className = "step-mark";
      mark.style.left = `${((t / this.duration) * 100).toFixed(2)}%`;
      mark.title = `Step: ${step.title}`;
      mark.dataset.seq = String(step.seq);
      mark.addEventListener("click", (e) => {
        e.stopPropagation();
        this.seekToPts(step.media_pts);
      });
      holder.append(mark);
    }
  }

  // --- side panel, timeline ------------------------------------------------------------------------

  renderFacts() {
    const s = this.review.session;
    $("player-title").textContent = `${s.room} · ${new Date(s.started_at).toLocaleString([], { hour12: false })}`;
    $("player-status").textContent = this.review.video ? this.review.video.status : "no recording";
    const ends = s.ended_at ? (new Date(s.ended_at) - new Date(s.started_at)) / 1000 : null;
    const total = this.review.ergonomics_session;
    const facts = [
      ["Room", s.room],
      ["Length", s.live ? "live" : fmtDuration(ends)],
      ["People", s.participants.join(", ") || "—"],
      ["Events", String(s.events)],
      ["Video", this.review.video ? fmtDuration(this.duration) : "not recorded"],
      ["Risk", total ? `REBA max ${total.max}, mean ${total.mean}` : "—"],
    ];
    $("facts").replaceChildren(
      ...facts.flatMap(([k, v]) => {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        return [dt, dd];
      }),
    );
  }

  renderTimeline() {
    const items = this.review.events.map((e) => {
      const item = document.createElement("li");
      item.className = `ev ev-${e.type}`;
      item.dataset.seq = String(e.seq);
      item.dataset.type = e.type;
      const t = this.mediaTimeOf(e.media_pts);
      const time = document.createElement("time");
      time.textContent =
        t === null ? new Date(e.wall_time).toLocaleTimeString([], { hour12: false }) : fmtDuration(t);
      const text = document.createElement("span");
      text.textContent = describe(e);
      item.append(time, text);
      if (t !== null && this.review.video) {
        item.classList.add("seekable");
        item.tabIndex = 0;
        item.title = "Show this moment";
        item.addEventListener("click", () => this.seekToPts(e.media_pts));
      }
      return item;
    });
    $("timeline").replaceChildren(...items);
    debug.timelineRendered = true;
    mark("timeline");
  }

  // --- plots ---------------------------------------------------------------------------------------

  drawPlots() {
    this.drawRisk();
    this.drawActivity();
    this.drawPlayhead();
  }

  _sizeCanvas(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr);
    const h = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    return [ctx, canvas.clientWidth, canvas.clientHeight];
  }

  span() {
    if (this.duration) return this.duration;
    const last = this.review.ergonomics.at(-1);
    return last && this.firstPts !== null ? (last.pts - this.firstPts) / CLOCK_HZ : 1;
  }

  drawRisk() {
    const [ctx, w, h] = this._sizeCanvas($("risk-plot"));
    const span = this.span();
    const series = this.review.ergonomics;
    if (!series.length || this.firstPts === null) {
      ctx.fillStyle = "#98a1b0";
      ctx.font = "12px system-ui";
      ctx.fillText(series.length ? "no video timing" : "no ergonomic data", 8, h / 2 + 4);
      return;
    }
    const x = (pts) => (((pts - this.firstPts) / CLOCK_HZ) / span) * w;
    const y = (score) => h - 4 - (Math.min(score, 15) / 15) * (h - 8);
    for (const point of series) {
      const x0 = x(point.from_pts ?? point.pts);
      const x1 = Math.max(x0 + 1, x(point.pts));
      ctx.fillStyle = RISK[rebaLevel(point.max)][0];
      ctx.globalAlpha = 0.35;
      ctx.fillRect(x0, y(point.max), x1 - x0, h - 4 - y(point.max));
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "#e7eaf0";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    series.forEach((point, i) => {
      const px = x(point.pts);
      const py = y(point.mean || 0);
      if (i) ctx.lineTo(px, py);
      else ctx.moveTo(px, py);
    });
    ctx.stroke();
  }

  drawActivity() {
    const [ctx, w, h] = this._sizeCanvas($("activity-plot"));
    const span = this.span();
    const counts = [];
    if (this.firstPts !== null) {
      for (const e of this.review.events) {
        const t = this.mediaTimeOf(e.media_pts);
        if (t === null) continue;
        const bin = Math.floor(t / 10);
        counts[bin] = (counts[bin] || 0) + 1;
      }
    }
    const bins = counts.length ? counts : this.review.activity.counts;
    const width = counts.length ? (10 / span) * w : w / Math.max(1, bins.length);
    const peak = Math.max(1, ...bins.map((n) => n || 0));
    ctx.fillStyle = "#3b82f6";
    bins.forEach((n, i) => {
      if (!n) return;
      const bh = (n / peak) * (h - 2);
      ctx.fillRect(i * width, h - bh, Math.max(1, width - 1), bh);
    });
    this.activityBins = bins;
  }

  drawPlayhead() {
    for (const id of ["risk-plot", "activity-plot"]) {
      const head = $(`${id}-head`) || makeHead(id);
      const share = this.duration ? Math.min(1, (this.video.currentTime || 0) / this.duration) : 0;
      head.style.left = `${(share * 100).toFixed(2)}%`;
    }
  }

  destroy() {
    if (this._vfc !== null && this.video.cancelVideoFrameCallback) {
      this.video.cancelVideoFrameCallback(this._vfc);
    }
    for (const [target, type, handler] of this._listeners) target.removeEventListener(type, handler);
    this._resize.disconnect();
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load();
    $("seek-steps").replaceChildren();
    $("timeline").replaceChildren();
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }
}

function mark(name) {
  if (!(name in debug.marks)) debug.marks[name] = performance.now();
}

function makeHead(id) {
  const head = document.createElement("div");
  head.className = "playhead";
  head.id = `${id}-head`;
  $(id).parentElement.append(head);
  return head;
}

function rebaLevel(score) {
  if (score <= 1) return "negligible";
  if (score <= 3) return "low";
  if (score <= 7) return "medium";
  if (score <= 10) return "high";
  return "very high";
}

function describe(e) {
  const p = e.payload || {};
  const who = e.actor || "system";
  switch (e.type) {
    case "ink":
      return `${who} drew ${p.tool === "arrow" ? "an arrow" : "a line"}${p.anchor ? " (anchored)" : ""}`;
    case "chat":
      return `${who}: ${p.text ?? ""}`;
    case "step":
      return `Step: ${p.title ?? ""}`;
    case "freeze":
      return `${who} ${p.on === false ? "let the video run again" : "froze the view"}`;
    case "consent":
      return `${who} ${p.recording ? "consented to recording" : "withdrew consent to recording"}`;
    case "join":
      return `${who} joined${p.role ? ` as ${p.role}` : ""}`;
    case "leave":
      return `${who} left`;
    case "recording_started":
      return "Recording started";
    case "recording_stopped":
      return "Recording stopped";
    case "recording_failed":
      return `Recording failed: ${p.error ?? ""}`;
    default: {
      const zone = p.zone ? ` (${p.zone})` : "";
      return `${e.type.replaceAll("_", " ")}${zone}${e.actor ? ` · ${e.actor}` : ""}`;
    }
  }
}

function drawMarkers(ctx, markers, at) {
  for (const marker of markers || []) {
    const corners = (marker.corners || []).map(at);
    if (corners.length !== 4) continue;
    ctx.save();
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = MARKER_COLOUR;
    ctx.fillStyle = "rgba(0,229,255,0.10)";
    ctx.beginPath();
    corners.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
    const axes = (marker.axes || []).map(at);
    if (axes.length === 4) {
      for (let i = 0; i < 3; i += 1) drawArrow(ctx, axes[0], axes[i + 1], AXIS_COLOURS[i], 3, 9);
    }
    const top = corners.reduce((a, b) => (b[1] < a[1] ? b : a));
    const distance = marker.tvec ? ` · ${Math.hypot(...marker.tvec).toFixed(2)} m` : "";
    drawLabel(ctx, `#${marker.id}${marker.label ? ` ${marker.label}` : ""}${distance}`, top[0], top[1] - 10, "#007c8c");
    ctx.restore();
  }
}

let codeCanvas = null;

/** The synthetic headset source's 16-bit frame counter in the top rows, or null (debug). */
function readFrameCode(video) {
  const width = video.videoWidth;
  const height = video.videoHeight;
  if (!width || !height) return null;
  if (!codeCanvas) {
    codeCanvas = document.createElement("canvas");
    codeCanvas.width = 640;
    codeCanvas.height = 16;
  }
  const ctx = codeCanvas.getContext("2d", { willReadFrequently: true });
  const scale = width / 640;
  ctx.drawImage(video, 0, 0, width, 16 * scale, 0, 0, 640, 16);
  const row = ctx.getImageData(0, 8, 640, 1).data;
  const white = (block) => {
    const i = (32 * block + 16) * 4;
    return (row[i] * 299 + row[i + 1] * 587 + row[i + 2] * 114) / 1000 > 127;
  };
  if (!white(0) || !white(17)) return null;
  let value = 0;
  for (let bit = 0; bit < 16; bit += 1) if (white(bit + 1)) value |= 1 << bit;
  return value;
}

// --- start -----------------------------------------------------------------------------------------

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  try {
    signedIn(await login($("login-username").value.trim(), $("login-password").value));
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
});
$("logout").addEventListener("click", () => signOut());
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  openList();
});
$("list-more").addEventListener("click", () => openList(true));
$("back").addEventListener("click", () => navigate(""));
window.addEventListener("popstate", () => app.auth && route());
// Test hooks: seek to a timeline event, like a click would.
debug.seekToEvent = (seq) => {
  const e = app.player && app.player.review.events.find((x) => x.seq === seq);
  if (!e) throw new Error(`no event ${seq}`);
  app.player.seekToPts(e.media_pts);
};

const auth = loadAuth();
if (auth) signedIn(auth);
else show("login");
