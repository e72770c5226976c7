// Ink: the strokes shown on this view (own, pending or confirmed, and other mentors'), and the
// pointer input that draws new ones. Points are normalized [u, v] on the video frame.

import { drawArrow, drawLabel } from "./view.js";

export const COLOURS = [
  ["#ff3b30", "red"],
  ["#ffcc00", "yellow"],
  ["#34c759", "green"],
  ["#0a84ff", "blue"],
  ["#ffffff", "white"],
];
export const LINE_WIDTH = 0.006; // fraction of the frame width
const MAX_POINTS = 2000;
const MIN_STEP = 0.002; // normalized distance between recorded pen points
const MIN_ARROW = 0.015;
const REJECTED_SHOWN_MS = 2500;
const REPLY_TIMEOUT_MS = 5000;

let counter = 0;

export function strokeId() {
  counter += 1;
  const random = Math.random().toString(36).slice(2, 8);
  return `m${Date.now().toString(36)}${random}${counter}`;
}

export class InkStore {
  constructor(onChange) {
    this.strokes = new Map(); // id -> stroke (insertion order = drawing order)
    this.drawing = null; // the stroke under the pointer
    this.onChange = onChange;
  }

  add(stroke) {
    this.strokes.set(stroke.id, stroke);
    this.onChange();
  }

  confirm(id, seq) {
    const stroke = this.strokes.get(id);
    if (!stroke) return false;
    stroke.status = "confirmed";
    stroke.seq = seq;
    this.onChange();
    return true;
  }

  reject(id) {
    const stroke = this.strokes.get(id);
    if (!stroke) return;
    stroke.status = "rejected";
    this.onChange();
    setTimeout(() => {
      this.strokes.delete(id);
      this.onChange();
    }, REJECTED_SHOWN_MS);
  }

  clear() {
    this.strokes.clear();
    this.drawing = null;
    this.onChange();
  }

  counts() {
    let pending = 0;
    let confirmed = 0;
    let others = 0;
    for (const s of this.strokes.values()) {
      if (!s.own) others += 1;
      else if (s.status === "pending") pending += 1;
      else if (s.status === "confirmed") confirmed += 1;
    }
    return { pending, confirmed, others };
  }

  draw(ctx, rect) {
    for (const stroke of this.strokes.values()) drawStroke(ctx, rect, stroke);
    if (this.drawing) drawStroke(ctx, rect, this.drawing);
  }
}

function drawStroke(ctx, rect, stroke) {
  const pts = stroke.points.map(([u, v]) => [rect.x + u * rect.width, rect.y + v * rect.height]);
  if (pts.length < 2) return;
  const width = Math.max(1.5, stroke.width * rect.width);
  ctx.save();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.shadowColor = "rgba(0,0,0,0.55)";
  ctx.shadowBlur = 3;
  if (stroke.status === "pending" || stroke.status === "drawing") ctx.globalAlpha = 0.6;
  if (stroke.status === "rejected") {
    ctx.globalAlpha = 0.35;
    ctx.setLineDash([width * 1.5, width * 1.5]);
  }
  if (stroke.tool === "arrow") {
    drawArrow(ctx, pts[0], pts[pts.length - 1], stroke.color, width, Math.max(14, width * 4));
  } else {
    ctx.strokeStyle = stroke.color;
    ctx.lineWidth = width;
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
  ctx.restore();
  if (!stroke.own && stroke.author) {
    drawLabel(ctx, stroke.author, pts[0][0], pts[0][1] - 8, "rgba(20,24,32,0.85)");
  }
}

/**
 * Pointer input on the canvas. `begin()` returns the frame pts the stroke is drawn on (or null
 * when no frame is shown); `finish(stroke)` sends it.
 */
export class InkInput {
  constructor(canvas, view, store, { begin, finish }) {
    this.canvas = canvas;
    this.view = view;
    this.store = store;
    this.begin = begin;
    this.finish = finish;
    this.tool = "pen";
    this.color = COLOURS[0][0];
    this.enabled = false;
    this._pointer = null;
    canvas.addEventListener("pointerdown", (e) => this._down(e));
    canvas.addEventListener("pointermove", (e) => this._move(e));
    canvas.addEventListener("pointerup", (e) => this._up(e));
    canvas.addEventListener("pointercancel", () => this._cancel());
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    this.canvas.classList.toggle("can-draw", enabled);
    if (!enabled) this._cancel();
  }

  _down(event) {
    if (!this.enabled || event.button !== 0 || this._pointer !== null) return;
    const uv = this.view.toUv(event.clientX, event.clientY);
    if (!uv) return;
    const pts = this.begin();
    if (pts === null) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this._pointer = event.pointerId;
    this.store.drawing = {
      id: strokeId(),
      pts,
      tool: this.tool,
      color: this.color,
      width: LINE_WIDTH,
      points: [uv],
      own: true,
      status: "drawing",
    };
    this.view.requestRender();
  }

  _move(event) {
    const stroke = this.store.drawing;
    if (event.pointerId !== this._pointer || !stroke) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      const uv = this.view.toUv(e.clientX, e.clientY, true);
      if (!uv) continue;
      if (stroke.tool === "arrow") {
        stroke.points = [stroke.points[0], uv];
      } else {
        const last = stroke.points[stroke.points.length - 1];
        const step = Math.hypot(uv[0] - last[0], uv[1] - last[1]);
        if (step >= MIN_STEP && stroke.points.length < MAX_POINTS) {
          stroke.points.push(uv);
        }
      }
    }
    this.view.requestRender();
  }

  _up(event) {
    const stroke = this.store.drawing;
    if (event.pointerId !== this._pointer || !stroke) return;
    this._move(event);
    this._pointer = null;
    this.store.drawing = null;
    if (stroke.points.length === 1) {
      if (stroke.tool === "arrow") {
        this.view.requestRender();
        return; // a click is not an arrow
      }
      stroke.points.push([...stroke.points[0]]); // a dot
    }
    const [a, b] = [stroke.points[0], stroke.points[stroke.points.length - 1]];
    if (stroke.tool === "arrow" && Math.hypot(b[0] - a[0], b[1] - a[1]) < MIN_ARROW) {
      this.view.requestRender();
      return;
    }
    this.finish(stroke);
  }

  _cancel() {
    this._pointer = null;
    if (this.store.drawing) {
      this.store.drawing = null;
      this.view.requestRender();
    }
  }
}

function roundUv([u, v]) {
  return [Math.round(u * 1e5) / 1e5, Math.round(v * 1e5) / 1e5];
}

/**
 * Ink on the wire (the `annotations` data channel): own strokes are shown at once as pending and
 * confirmed on the server's ack; refused ones are marked and then dropped; other mentors' strokes
 * are added as they arrive.
 */
export class InkChannel {
  /** send(message) -> false when the channel is not open; onError({code, message, id}). */
  constructor(store, { send, onError }) {
    this.store = store;
    this.sendMessage = send;
    this.onError = onError;
    this.counters = { strokesSent: 0, strokesAcked: 0, strokesReceived: 0 };
    this.replies = new Map(); // stroke id -> resolve()
  }

  /** Send a stroke; resolves with the server's reply (ack or error), or a timeout. */
  send(stroke) {
    stroke.status = "pending";
    stroke.own = true;
    stroke.points = stroke.points.map(roundUv);
    this.store.add(stroke);
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
      if (!this.sendMessage(message)) {
        const error = {
          type: "error",
          code: "not_connected",
          message: "the ink channel is not open; the stroke was not sent",
          id: stroke.id,
        };
        this.onError(error);
        this.store.reject(stroke.id);
        resolve(error);
        return;
      }
      this.counters.strokesSent += 1;
      this.replies.set(stroke.id, resolve);
      setTimeout(() => {
        if (this.replies.delete(stroke.id)) resolve({ type: "timeout", id: stroke.id });
      }, REPLY_TIMEOUT_MS);
    });
  }

  _reply(id, message) {
    const resolve = this.replies.get(id);
    this.replies.delete(id);
    if (resolve) resolve(message);
  }

  onMessage(message) {
    if (message.type === "ack") {
      if (this.store.confirm(message.id, message.seq)) this.counters.strokesAcked += 1;
      this._reply(message.id, message);
    } else if (message.type === "error") {
      this.onError({ ...message, message: `Ink refused: ${message.message}` });
      if (message.id) {
        this.store.reject(message.id);
        this._reply(message.id, message);
      }
    } else if (message.type === "stroke") {
      this.counters.strokesReceived += 1;
      this.store.add({ ...message, own: false, status: "confirmed" });
    }
  }

  /** The channel is gone: every stroke still waiting gets this error. */
  failAll(message) {
    for (const resolve of this.replies.values()) resolve({ type: "error", code: "closed", message });
    this.replies.clear();
  }
}
