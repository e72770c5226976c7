// One visit to a room: the signaling WebSocket, the peer connection and its data channels.
//
// The page offers, the server answers (it never offers). Data channels are negotiated with fixed
// ids, so both sides create them before the offer and nobody waits for the other. aiortc does not
// trickle ICE candidates, so the offer is sent once gathering is complete.

export const PROTOCOL_VERSION = 1;

/** label -> [id, options]; must match server/protocol.py DATA_CHANNELS. */
const CHANNELS = {
  overlay: [1, { ordered: false, maxRetransmits: 0 }],
  annotations: [2, { ordered: true }],
};

const ICE_GATHER_TIMEOUT_MS = 4000;

/** What the 4000-range close codes of the server mean, in words a person can act on. */
const CLOSE_WORDS = {
  1000: "closed",
  1001: "the server went away",
  1006: "the connection was lost",
  1011: "the server hit an internal error",
  4000: "the server could not read a message",
  4001: "not signed in, or the sign-in expired",
  4002: "this page speaks a protocol version the server does not support",
  4003: "not allowed",
  4004: "the room is in use in a conflicting way",
  4005: "messages arrived out of order",
  4006: "the room is full",
  4007: "too many invalid messages",
  4009: "a message was too large",
  4010: "the server is shutting down",
};

export function describeClose(code, reason) {
  const words = CLOSE_WORDS[code] || `closed with code ${code}`;
  return reason ? `${words}: ${reason} (${code})` : `${words} (${code})`;
}

function waitForIceGathering(pc, timeoutMs) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") {
      resolve(true);
      return;
    }
    const done = (complete) => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve(complete);
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done(true);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Events (CustomEvent, details in parentheses):
 *   state        ({signaling, ice, peer})          any of the three changed
 *   joined       (JoinedMessage)
 *   participant  ({joined: ParticipantInfo} | {left: id})
 *   video        (MediaStreamTrack)                the worker's video slot
 *   audio        (MediaStreamTrack)                the room's voices
 *   overlay      (OverlayMessage)
 *   annotation   (StrokeMessage | AckMessage | ErrorMessage)
 *   servererror  (ErrorMessage)                    an error on signaling
 *   closed       ({code, reason, words, byUs})     the visit is over
 */
export class RoomSession extends EventTarget {
  constructor({ token, room, role, microphone = null, log = () => {} }) {
    super();
    this.token = token;
    this.room = room;
    this.role = role;
    this.microphone = microphone; // a live audio MediaStreamTrack, or null (receive only)
    this.log = log;
    this.ws = null;
    this.pc = null;
    this.channels = {};
    this.joined = null;
    this.signaling = "new";
    this.closed = false;
    this._leaving = false;
  }

  get iceState() {
    return this.pc ? this.pc.iceConnectionState : "new";
  }

  get peerState() {
    return this.pc ? this.pc.connectionState : "new";
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setSignaling(state) {
    this.signaling = state;
    this._emitState();
  }

  _emitState() {
    this._emit("state", { signaling: this.signaling, ice: this.iceState, peer: this.peerState });
  }

  start() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    this._setSignaling("connecting");
    ws.addEventListener("open", () => {
      this._setSignaling("joining");
      this._send({ type: "join", token: this.token, room: this.room, role: this.role });
    });
    ws.addEventListener("message", (event) => this._onSignal(event.data));
    ws.addEventListener("close", (event) => this._onSocketClosed(event.code, event.reason));
    ws.addEventListener("error", () => this.log("signaling socket error", "error"));
  }

  _send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
      return true;
    }
    return false;
  }

  async _onSignal(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      this.log("unreadable message from the server", "error");
      return;
    }
    switch (message.type) {
      case "joined":
        this.joined = message;
        this._setSignaling("joined");
        this._emit("joined", message);
        try {
          await this._offer();
        } catch (err) {
          this.log(`could not start media: ${err.message || err}`, "error");
          this._emit("servererror", { code: "media", message: String(err.message || err) });
        }
        break;
      case "answer":
        if (!this.pc || this.pc.signalingState === "closed") return;
        try {
          await this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
          this._setSignaling("connected");
        } catch (err) {
          this.log(`the server's answer could not be applied: ${err.message}`, "error");
        }
        break;
      case "participant_joined":
        this._emit("participant", { joined: message.participant });
        break;
      case "participant_left":
        this._emit("participant", { left: message.participant_id });
        break;
      case "error":
        // close_4xxx announces the close that follows; the close event tells it, once.
        if (!String(message.code).startsWith("close_")) this._emit("servererror", message);
        break;
      case "pong":
        break;
      default:
        this.log(`ignored a ${message.type} message from the server`);
    }
  }

  async _offer() {
    const ice = (this.joined.ice_servers || []).map((url) => ({ urls: url }));
    const pc = new RTCPeerConnection({ iceServers: ice });
    this.pc = pc;
    const changes = ["iceconnectionstatechange", "connectionstatechange", "icegatheringstatechange"];
    for (const name of changes) pc.addEventListener(name, () => this._emitState());
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed") {
        this.log("the media connection failed", "error");
      }
    });
    pc.addEventListener("track", (event) => {
      this._emit(event.track.kind === "video" ? "video" : "audio", event.track);
    });
    const ids = this.joined.data_channels || {};
    for (const [label, [fallbackId, options]] of Object.entries(CHANNELS)) {
      const id = Number.isInteger(ids[label]) ? ids[label] : fallbackId;
      const channel = pc.createDataChannel(label, { negotiated: true, id, ...options });
      channel.addEventListener("message", (event) => this._onChannel(label, event.data));
      channel.addEventListener("open", () => this.log(`${label} channel open`));
      this.channels[label] = channel;
    }
    // The worker's video comes through this slot; it stays negotiated while workers come and go.
    pc.addTransceiver("video", { direction: "recvonly" });
    if (this.microphone) {
      pc.addTransceiver(this.microphone, { direction: "sendrecv" });
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    await pc.setLocalDescription(await pc.createOffer());
    this._setSignaling("gathering");
    const complete = await waitForIceGathering(pc, ICE_GATHER_TIMEOUT_MS);
    if (!complete) this.log("ICE gathering did not finish in time; offering what was found");
    if (this.closed) return;
    this._send({ type: "offer", sdp: pc.localDescription.sdp });
    this._setSignaling("offered");
  }

  _onChannel(label, raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (label === "overlay" && message.type === "overlay") {
      this._emit("overlay", message);
    } else if (label === "annotations") {
      this._emit("annotation", message);
    }
  }

  /** Send a stroke on the annotations channel; false when the channel is not open. */
  sendAnnotation(message) {
    const channel = this.channels.annotations;
    if (!channel || channel.readyState !== "open") return false;
    channel.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
    return true;
  }

  async stats() {
    return this.pc ? this.pc.getStats() : null;
  }

  _onSocketClosed(code, reason) {
    const byUs = this._leaving;
    this._setSignaling(byUs ? "left" : "closed");
    this._teardown();
    if (!this.closed) {
      this.closed = true;
      this._emit("closed", { code, reason, words: describeClose(code, reason), byUs });
    }
  }

  _teardown() {
    for (const channel of Object.values(this.channels)) channel.close();
    this.channels = {};
    if (this.pc) {
      this.pc.close();
      this._emitState();
    }
  }

  /** Leave the room: tell the server, close the peer connection and the socket. */
  leave() {
    this._leaving = true;
    this._send({ type: "leave" });
    this._teardown();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      this.ws.close(1000, "left");
    }
    if (!this.closed) {
      this.closed = true;
      this._setSignaling("left");
      this._emit("closed", { code: 1000, reason: "left", words: "you left the room", byUs: true });
    }
  }
}
