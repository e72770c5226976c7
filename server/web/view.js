// The live view: the worker's video with a canvas on top that draws, for each displayed frame,
// the vision overlay of THAT frame (matched by RTP timestamp) and the ink.
//
// A frame's name is its RTP timestamp (90 kHz). requestVideoFrameCallback gives the timestamp of
// the frame being presented; overlays carry `pts`, the same timestamp unwrapped to 64 bits. We keep
// a short buffer of overlays and, per frame, draw the one with the same timestamp, or else the
// newest one older than the frame, marked stale when it is more than STALE_MS older.

import { LAYERS, drawAnchors, drawObjects, drawPeople, drawZones } from "./layers.js";

const RTP_MOD = 2 ** 32;
const HALF = 2 ** 31;
const CLOCK_HZ = 90000;
export const STALE_MS = 500;
const HIDE_AFTER_MS = 3000; // an overlay this much older than the frame is not drawn at all
const OVERLAY_KEEP = 90;
const LATENCY_KEEP = 900;

const AXIS_COLOURS = ["#ff453a", "#32d74b", "#0a84ff"]; // x, y, z
const MARKER_COLOUR = "#00e5ff";

/** Signed ticks by which timestamp a is after b, modulo 2**32. */
export function ticksAfter(a, b) {
  let d = (a - b) % RTP_MOD;
  if (d < 0) d += RTP_MOD;
  if (d >= HALF) d -= RTP_MOD;
  return d;
}

export class LiveView {
  constructor(video, canvas, { ink, debug, onFrame }) {
    this.video = video;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.ink = ink;
    this.onFrame = onFrame;
    this.overlays = []; // newest last
    this.lastOverlay = null;
    this.current = null; // {frameTs, overlay, exact, ageMs}
    this.frameTs = null; // RTP timestamp of the frame on screen
    this.frameSize = null;
    this.lastFrameAt = 0; // performance.now() of the last presented frame
    this.readFrameCode = debug;
    this.lastFrameCode = null;
    this.latency = [];
    this.counters = { framesDecoded: 0, overlaysReceived: 0, overlaysDrawn: 0, overlaysMatched: 0 };
    this.overlaysSinceFrame = 0; // vision results for frames this page never got…
    this.overlaysWithoutFramesSince = 0; // …arriving since this performance.now()
    this.lastDrawn = null;
    this.layers = Object.fromEntries(LAYERS.map((name) => [name, true]));
    this._vfcHandle = null;
    this._raf = 0;
    this._codeCanvas = null;
    this._resize = new ResizeObserver(() => this.requestRender());
    this._resize.observe(canvas);
  }

  // --- frames and overlays --------------------------------------------------------------------

  attach(track) {
    this.video.srcObject = new MediaStream([track]);
    this.video.play().catch(() => {}); // muted video may autoplay; a failure shows no frames
    this._watchFrames();
  }

  detach() {
    if (this._vfcHandle !== null && this.video.cancelVideoFrameCallback) {
      this.video.cancelVideoFrameCallback(this._vfcHandle);
    }
    this._vfcHandle = null;
    this.video.srcObject = null;
    this.overlays = [];
    this.overlaysSinceFrame = 0;
    this.current = null;
    this.frameTs = null;
    this.requestRender();
  }

  _watchFrames() {
    if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) {
      throw new Error(
        "this browser lacks requestVideoFrameCallback; use a current Chromium, Edge or Safari",
      );
    }
    if (this._vfcHandle !== null) return;
    const step = (now, metadata) => {
      this._vfcHandle = this.video.requestVideoFrameCallback(step);
      this._onVideoFrame(now, metadata);
    };
    this._vfcHandle = this.video.requestVideoFrameCallback(step);
  }

  _onVideoFrame(now, metadata) {
    this.counters.framesDecoded += 1;
    this.overlaysSinceFrame = 0;
    this.lastFrameAt = performance.now();
    this.frameSize = { width: metadata.width, height: metadata.height };
    const ts = metadata.rtpTimestamp;
    if (ts !== undefined) this.frameTs = ts;
    if (this.readFrameCode) {
      const code = this._readFrameCode(metadata.width, metadata.height);
      this.lastFrameCode = code;
      const at = (t) => (t === undefined ? null : performance.timeOrigin + t);
      // Epoch milliseconds. receivedAtMs: when the page got the frame (this callback);
      // packetReceivedAtMs: last RTP packet of it arrived; presentedAtMs: rVFC's `now`.
      this.latency.push({
        code,
        rtpTimestamp: ts ?? null,
        receivedAtMs: at(performance.now()),
        packetReceivedAtMs: at(metadata.receiveTime),
        presentedAtMs: at(now),
        expectedDisplayAtMs: at(metadata.expectedDisplayTime),
      });
      if (this.latency.length > LATENCY_KEEP) this.latency.splice(0, this.latency.length - LATENCY_KEEP);
    }
    this.current = ts === undefined ? null : this._select(ts);
    if (this.current && this.current.ageMs <= STALE_MS) {
      this.counters.overlaysDrawn += 1;
      if (this.current.exact) this.counters.overlaysMatched += 1;
    }
    this.lastDrawn = this.current && {
      frameTs: ts,
      overlayPts: this.current.overlay.pts,
      exact: this.current.exact,
      stale: this.current.ageMs > STALE_MS,
      ageMs: this.current.ageMs,
      markerIds: this.current.overlay.markers.map((m) => m.id),
    };
    this.render();
    if (this.onFrame) this.onFrame();
  }

  addOverlay(message) {
    this.counters.overlaysReceived += 1;
    this.overlaysSinceFrame += 1;
    if (this.overlaysSinceFrame === 1) this.overlaysWithoutFramesSince = performance.now();
    message.key = Number(message.pts) % RTP_MOD;
    this.lastOverlay = message;
    this.overlays.push(message);
    if (this.overlays.length > OVERLAY_KEEP) this.overlays.shift();
  }

  /** The overlay for frame `ts`: same timestamp, else the newest older one (with its age). */
  _select(ts) {
    let best = null;
    let bestAge = Infinity;
    for (let i = this.overlays.length - 1; i >= 0; i -= 1) {
      const overlay = this.overlays[i];
      const d = ticksAfter(ts, overlay.key);
      if (d === 0) return { overlay, exact: true, ageMs: 0 };
      if (d > 0 && d < bestAge) {
        best = overlay;
        bestAge = d;
      }
    }
    if (!best) return null;
    const ageMs = (bestAge / CLOCK_HZ) * 1000;
    return ageMs > HIDE_AFTER_MS ? null : { overlay: best, exact: false, ageMs };
  }

  /** The 64-bit pts of the frame on screen (unwrapped next to the newest overlay's pts). */
  currentPts() {
    if (this.frameTs === null) return null;
    if (!this.lastOverlay) return this.frameTs;
    const ref = Number(this.lastOverlay.pts);
    let pts = ref - (ref % RTP_MOD) + this.frameTs;
    if (pts - ref > HALF) pts -= RTP_MOD;
    else if (ref - pts > HALF) pts += RTP_MOD;
    return Math.max(0, pts);
  }

  /**
   * The 16-bit frame counter the synthetic headset source draws on the top rows (debug), or null
   * when the strip is not there (its white guard blocks are missing).
   *
   * drawImage() copies the frame the element holds NOW: when this callback runs late (a busy
   * main thread) that can already be the next frame, so a code may run one frame ahead of the
   * rtpTimestamp it is recorded with.
   */
  _readFrameCode(width, height) {
    if (!width || !height) return null;
    if (!this._codeCanvas) {
      this._codeCanvas = document.createElement("canvas");
      this._codeCanvas.width = 640;
      this._codeCanvas.height = 16;
      this._codeCtx = this._codeCanvas.getContext("2d", { willReadFrequently: true });
    }
    const scale = width / 640;
    // Copy the code strip (16 rows at 640 px wide) to 640x16, then sample each block's centre.
    this._codeCtx.drawImage(this.video, 0, 0, width, 16 * scale, 0, 0, 640, 16);
    const row = this._codeCtx.getImageData(0, 8, 640, 1).data;
    const white = (block) => {
      const i = (32 * block + 16) * 4;
      return (row[i] * 299 + row[i + 1] * 587 + row[i + 2] * 114) / 1000 > 127;
    };
    if (!white(0) || !white(17)) return null;
    let value = 0;
    for (let bit = 0; bit < 16; bit += 1) {
      if (white(bit + 1)) value |= 1 << bit;
    }
    return value;
  }

  // --- geometry -------------------------------------------------------------------------------

  /** The displayed video rectangle inside the element (object-fit: contain), CSS pixels. */
  contentRect() {
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    const vw = this.video.videoWidth || (this.frameSize && this.frameSize.width);
    const vh = this.video.videoHeight || (this.frameSize && this.frameSize.height);
    if (!vw || !vh || !w || !h) return null;
    const scale = Math.min(w / vw, h / vh);
    const width = vw * scale;
    const height = vh * scale;
    return { x: (w - width) / 2, y: (h - height) / 2, width, height };
  }

  /** Client coordinates to normalized [u, v] on the frame; null outside the picture. */
  toUv(clientX, clientY, clamp = false) {
    const rect = this.contentRect();
    if (!rect) return null;
    const box = this.canvas.getBoundingClientRect();
    let u = (clientX - box.left - rect.x) / rect.width;
    let v = (clientY - box.top - rect.y) / rect.height;
    if (clamp) {
      u = Math.min(1, Math.max(0, u));
      v = Math.min(1, Math.max(0, v));
    } else if (u < 0 || u > 1 || v < 0 || v > 1) {
      return null;
    }
    return [u, v];
  }

  // --- drawing --------------------------------------------------------------------------------

  requestRender() {
    if (this._raf) return;
    this._raf = requestAnimationFrame(() => {
      this._raf = 0;
      this.render();
    });
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
    if (!rect) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.save();
    ctx.beginPath();
    ctx.rect(rect.x, rect.y, rect.width, rect.height);
    ctx.clip();
    if (this.current && this.video.srcObject) this._drawOverlay(rect, this.current);
    this.ink.draw(ctx, rect);
    ctx.restore();
  }

  _drawOverlay(rect, { overlay, ageMs }) {
    const ctx = this.ctx;
    const stale = ageMs > STALE_MS;
    const at = ([u, v]) => [rect.x + u * rect.width, rect.y + v * rect.height];
    ctx.save();
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    if (stale) {
      ctx.globalAlpha = 0.45;
      ctx.setLineDash([6, 5]);
    } else {
      ctx.globalAlpha = 1 - 0.5 * (ageMs / STALE_MS); // older overlay, fainter outline
    }
    const label = (text, x, y, background) => drawLabel(ctx, text, x, y, stale ? "#5b6270" : background);
    if (this.layers.zones) drawZones(ctx, overlay.zones, overlay.events, at, label);
    if (this.layers.people) drawPeople(ctx, overlay.persons, at, label);
    if (this.layers.objects) drawObjects(ctx, overlay.objects, at, label);
    if (this.layers.anchors && !stale) drawAnchors(ctx, overlay.anchors, at);
    for (const marker of this.layers.markers ? overlay.markers : []) {
      const corners = (marker.corners || []).map(at);
      if (corners.length === 4) {
        ctx.lineWidth = 2.5;
        ctx.strokeStyle = stale ? "#b0b8c4" : MARKER_COLOUR;
        ctx.fillStyle = stale ? "rgba(176,184,196,0.08)" : "rgba(0,229,255,0.10)";
        ctx.beginPath();
        corners.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.closePath();
        ctx.fill();
        ctx.stroke();
        // The first corner (the printed marker's top-left) gets a small square.
        ctx.fillStyle = ctx.strokeStyle;
        ctx.fillRect(corners[0][0] - 3, corners[0][1] - 3, 6, 6);
      }
      const axes = (marker.axes || []).map(at);
      if (axes.length === 4 && !stale) {
        ctx.setLineDash([]);
        ctx.lineWidth = 3;
        for (let i = 0; i < 3; i += 1) {
          drawArrow(ctx, axes[0], axes[i + 1], AXIS_COLOURS[i], 3, 9);
        }
      }
      if (corners.length === 4) {
        const top = corners.reduce((a, b) => (b[1] < a[1] ? b : a));
        const distance = marker.tvec ? ` · ${Math.hypot(...marker.tvec).toFixed(2)} m` : "";
        const staleness = stale ? ` · stale ${(ageMs / 1000).toFixed(1)} s` : "";
        const name = marker.label ? ` ${marker.label}` : "";
        const text = `#${marker.id}${name}${distance}${staleness}`;
        drawLabel(ctx, text, top[0], top[1] - 10, stale ? "#5b6270" : "#007c8c");
      }
    }
    ctx.restore();
  }

  destroy() {
    this.detach();
    this._resize.disconnect();
    if (this._raf) cancelAnimationFrame(this._raf);
  }
}

export function drawArrow(ctx, from, to, colour, width, head) {
  const [x0, y0] = from;
  const [x1, y1] = to;
  const angle = Math.atan2(y1 - y0, x1 - x0);
  const len = Math.hypot(x1 - x0, y1 - y0);
  const size = Math.min(head, len * 0.6);
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = width;
  ctx.lineCap = "round";
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1 - Math.cos(angle) * size * 0.6, y1 - Math.sin(angle) * size * 0.6);
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - size * Math.cos(angle - 0.45), y1 - size * Math.sin(angle - 0.45));
  ctx.lineTo(x1 - size * Math.cos(angle + 0.45), y1 - size * Math.sin(angle + 0.45));
  ctx.closePath();
  ctx.fill();
  ctx.restore();
}

export function drawLabel(ctx, text, cx, bottom, background) {
  ctx.save();
  ctx.setLineDash([]);
  ctx.globalAlpha = 1;
  ctx.font = "600 12px system-ui, sans-serif";
  const width = ctx.measureText(text).width + 12;
  const x = cx - width / 2;
  const y = bottom - 18;
  ctx.fillStyle = background;
  ctx.beginPath();
  ctx.roundRect(x, y, width, 18, 5);
  ctx.fill();
  ctx.fillStyle = "#fff";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + 6, y + 9.5);
  ctx.restore();
}
