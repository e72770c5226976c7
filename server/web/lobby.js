// Before a room: the sign-in token (kept in sessionStorage), REST calls, and the room picker
// (a room name field, the role to join as, and the live rooms, refreshed every few seconds).

const AUTH_KEY = "fieldsight.auth";
const ROOMS_REFRESH_MS = 3000;
export const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

const $ = (id) => document.getElementById(id);

// --- sign in -----------------------------------------------------------------------------------

/** The stored sign-in, unless it is missing, broken or about to expire. */
export function loadAuth() {
  try {
    const auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
    if (auth && auth.access_token && auth.expires_at * 1000 > Date.now() + 30_000) return auth;
  } catch {
    /* a broken entry is the same as none */
  }
  sessionStorage.removeItem(AUTH_KEY);
  return null;
}

export function clearAuth() {
  sessionStorage.removeItem(AUTH_KEY);
}

/** The server's reason for a refused request, in its own words. */
export async function readError(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch {
    /* not JSON */
  }
  return `${response.status} ${response.statusText}`;
}

/** Sign in; resolves with {access_token, expires_at, username, role, display_name}. */
export async function login(username, password) {
  let response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch (err) {
    throw new Error(`The server cannot be reached (${err.message}).`);
  }
  if (!response.ok) {
    const what = response.status === 401 ? "Sign-in refused" : "Sign-in failed";
    throw new Error(`${what}: ${await readError(response)}.`);
  }
  const auth = await response.json();
  sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  return auth;
}

export class AuthExpired extends Error {}

/** GET a JSON resource with the bearer token; AuthExpired when the server no longer takes it. */
export async function apiGet(path, token) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (response.status === 401) throw new AuthExpired(await readError(response));
  if (!response.ok) throw new Error(await readError(response));
  return response.json();
}

// --- room picker -------------------------------------------------------------------------------

export class RoomPicker {
  /**
   * token(): the bearer token; onJoin(room, role): the user chose; onExpired(reason): the token
   * was refused.
   */
  constructor({ token, onJoin, onExpired }) {
    this.token = token;
    this.onJoin = onJoin;
    this.onExpired = onExpired;
    this.timer = 0;
    $("join-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.join($("room-name").value.trim());
    });
  }

  /** Which roles the account may take (the server enforces the same rule). */
  setAccountRole(accountRole) {
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
      note.textContent =
        "A worker account streams from a headset; this page is for mentors and observers.";
      note.hidden = false;
    }
  }

  join(room) {
    const error = $("join-error");
    error.hidden = true;
    if (!ROOM_PATTERN.test(room)) {
      error.textContent = "A room name is 1 to 64 letters, digits, dots, dashes or underscores.";
      error.hidden = false;
      return;
    }
    const role = document.querySelector('input[name="role"]:checked').value;
    this.onJoin(room, role);
  }

  start() {
    if (this.timer) return;
    this.refresh();
    this.timer = setInterval(() => this.refresh(), ROOMS_REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  async refresh() {
    const status = $("rooms-status");
    let rooms;
    try {
      rooms = await apiGet("/api/rooms", this.token());
    } catch (err) {
      if (err instanceof AuthExpired) {
        this.stop();
        this.onExpired(err.message);
      } else {
        status.textContent = `could not load rooms: ${err.message}`;
      }
      return;
    }
    if (!this.timer) return; // left the picker meanwhile
    status.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    $("room-list").replaceChildren(...rooms.map((room) => this._item(room)));
    $("rooms-empty").hidden = rooms.length > 0;
  }

  _item(room) {
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
      this.join(room.room);
    });
    item.append(dot, text, join);
    return item;
  }
}
