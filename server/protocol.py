"""The Fieldsight wire protocol: every signaling and data channel message, as pydantic models.

Signaling runs over the WebSocket ``/ws`` as JSON text frames. Each message carries ``type``
(the discriminator) and ``v`` (the protocol version, :data:`PROTOCOL_VERSION`).

Data channels (negotiated out of band with fixed ids, so neither side waits for the other):

========== == ============================ =========================================
label      id direction                    content
========== == ============================ =========================================
telemetry  0  headset -> server            :class:`TelemetryMessage` (unordered, lossy)
overlay    1  server -> every participant  :class:`OverlayMessage` (unordered, lossy)
annotations 2 both ways                    :class:`StrokeMessage`, :class:`AckMessage`
========== == ============================ =========================================

Coordinates on a frame are normalized ``[u, v]`` in ``[0, 1]`` (``u = x / width``), so they survive
the resolution changes a WebRTC sender makes. A frame is named by its ``pts``: the RTP timestamp
(90 kHz) of the worker's video as the server receives it, which is also the RTP timestamp every
viewer receives (see :mod:`server.rtc.clock`).
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from server.errors import FieldsightError

__all__ = [
    "DATA_CHANNELS",
    "DEPTH_MAGIC",
    "PROTOCOL_VERSION",
    "AckMessage",
    "AnchorMessage",
    "AnnotationMessage",
    "ChatMessage",
    "ConsentMessage",
    "AnswerMessage",
    "ClientMessage",
    "CloseCode",
    "DepthHeader",
    "ErrorMessage",
    "FreezeMessage",
    "JoinMessage",
    "JoinedMessage",
    "LeaveMessage",
    "OfferMessage",
    "OverlayMessage",
    "ParticipantInfo",
    "ParticipantJoinedMessage",
    "ParticipantLeftMessage",
    "PingMessage",
    "PongMessage",
    "RECORDED_TYPES",
    "RecordedMessage",
    "RecordingMessage",
    "ProtocolError",
    "ServerMessage",
    "StepMessage",
    "StrokeMessage",
    "TelemetryMessage",
    "pack_depth",
    "parse_annotation",
    "parse_client_message",
    "parse_depth",
    "parse_telemetry",
]

PROTOCOL_VERSION = 1
CHAT_MAX_CHARS = 2000

#: label -> (negotiated id, ordered, max retransmits)
DATA_CHANNELS: dict[str, tuple[int, bool, int | None]] = {
    "telemetry": (0, False, 0),
    "overlay": (1, False, 0),
    "annotations": (2, True, None),
}

ParticipantRole = Literal["worker", "mentor", "observer"]


class CloseCode(enum.IntEnum):
    """WebSocket close codes (4000 range) the server uses; the close reason says what to do."""

    BAD_MESSAGE = 4000
    UNAUTHORIZED = 4001
    UNSUPPORTED_VERSION = 4002
    FORBIDDEN = 4003
    ROOM_CONFLICT = 4004
    OUT_OF_ORDER = 4005
    ROOM_FULL = 4006
    TOO_MANY_ERRORS = 4007
    MESSAGE_TOO_LARGE = 4009
    SERVER_SHUTDOWN = 4010


class ProtocolError(FieldsightError):
    """A message that cannot be accepted. ``code`` names the error for the client."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v: int = PROTOCOL_VERSION


Uv = Annotated[list[Annotated[float, Field(ge=-0.5, le=1.5)]], Field(min_length=2, max_length=2)]
Pts = Annotated[int, Field(ge=0, lt=2**63)]


# --- signaling: client -> server -------------------------------------------------------------


class JoinMessage(_Message):
    """First message of a connection: who I am (token) and where I go."""

    type: Literal["join"] = "join"
    token: str = Field(min_length=1, max_length=4096)
    room: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    role: ParticipantRole


class OfferMessage(_Message):
    """An SDP offer. The first one starts the media; later ones renegotiate."""

    type: Literal["offer"] = "offer"
    sdp: str = Field(min_length=1, max_length=60_000)


class LeaveMessage(_Message):
    type: Literal["leave"] = "leave"


class PingMessage(_Message):
    type: Literal["ping"] = "ping"
    id: int = 0


ClientMessage = Annotated[
    JoinMessage | OfferMessage | LeaveMessage | PingMessage, Field(discriminator="type")
]


# --- signaling: server -> client -------------------------------------------------------------


class ParticipantInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    username: str
    display_name: str
    role: ParticipantRole


class RecordingMessage(_Message):
    """Server -> everyone: whether the session is being recorded now, and why (not)."""

    type: Literal["recording"] = "recording"
    on: bool
    reason: str


class JoinedMessage(_Message):
    type: Literal["joined"] = "joined"
    participant_id: str
    session_id: str
    room: str
    role: ParticipantRole
    participants: list[ParticipantInfo]
    ice_servers: list[str]
    data_channels: dict[str, int]
    recording: RecordingMessage | None = None
    """Whether the session is being recorded now (later changes come on ``annotations``)."""


class AnswerMessage(_Message):
    type: Literal["answer"] = "answer"
    sdp: str


class ParticipantJoinedMessage(_Message):
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


class ParticipantLeftMessage(_Message):
    type: Literal["participant_left"] = "participant_left"
    participant_id: str


class PongMessage(_Message):
    type: Literal["pong"] = "pong"
    id: int = 0


class ErrorMessage(_Message):
    """Something the client sent was refused. ``code`` is stable, ``message`` is for people."""

    type: Literal["error"] = "error"
    code: str
    message: str
    id: str | None = None


ServerMessage = (
    JoinedMessage
    | AnswerMessage
    | ParticipantJoinedMessage
    | ParticipantLeftMessage
    | PongMessage
    | ErrorMessage
)


# --- data channels ---------------------------------------------------------------------------


class IntrinsicsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)


class TelemetryMessage(_Message):
    """Headset -> server, one per sent video frame (or fewer)."""

    type: Literal["telemetry"] = "telemetry"
    pts: Pts
    t_capture_ms: float | None = None
    """Capture time, Unix epoch milliseconds, on the headset's clock."""
    head_pose: list[float] | None = Field(default=None, min_length=16, max_length=16)
    """World-from-camera 4x4 pose, row-major, metres."""
    intrinsics: IntrinsicsModel | None = None


DEPTH_MAGIC = b"FSD1"
"""First bytes of a binary depth message on the ``telemetry`` channel."""


class DepthHeader(_Message):
    """Headset -> server, binary on the ``telemetry`` channel: the depth image of frame ``pts``.

    Framing: ``DEPTH_MAGIC``, the header's length (uint32, big-endian), this header as UTF-8
    JSON, then the image: a 16-bit single-channel PNG whose values times ``scale_m`` are metres
    (0 = no depth), registered to the colour camera (same viewpoint, any resolution).
    """

    type: Literal["depth"] = "depth"
    pts: Pts
    format: Literal["png16"] = "png16"
    scale_m: float = Field(default=0.001, gt=0, le=0.01)
    """Metres per depth unit (0.001: millimetres; TUM RGB-D: 0.0002)."""
    intrinsics: IntrinsicsModel | None = None
    """Of the depth image; default: the colour camera's, scaled to the depth image's size."""


def pack_depth(header: DepthHeader, image: bytes) -> bytes:
    """The binary message for ``header`` and a 16-bit PNG (what a headset sends)."""
    head = header.model_dump_json().encode()
    return DEPTH_MAGIC + len(head).to_bytes(4, "big") + head + image


def parse_depth(raw: bytes, limit: int) -> tuple[DepthHeader, bytes]:
    """Split a binary depth message into its header and image bytes (not decoded here)."""
    if len(raw) > limit:
        raise ProtocolError(
            "too_large", f"depth message of {len(raw)} bytes exceeds the {limit} limit"
        )
    if raw[:4] != DEPTH_MAGIC or len(raw) < 8:
        raise ProtocolError("bad_message", "a binary telemetry message must be a depth message")
    size = int.from_bytes(raw[4:8], "big")
    if size > min(len(raw) - 8, 4096):
        raise ProtocolError("bad_message", "depth message header length is out of bounds")
    data = _check_envelope(raw[8 : 8 + size], 4096)
    try:
        header = DepthHeader.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", f"invalid depth header: {_describe(exc)}") from None
    image = raw[8 + size :]
    if not image:
        raise ProtocolError("invalid", "depth message carries no image")
    return header, image


class OverlayMessage(_Message):
    """Server -> everyone: what the vision pipeline found on frame ``pts``."""

    type: Literal["overlay"] = "overlay"
    pts: Pts
    width: int
    height: int
    markers: list[dict[str, Any]]
    persons: list[dict[str, Any]] = Field(default_factory=list)
    objects: list[dict[str, Any]] = Field(default_factory=list)
    camera_pose: dict[str, Any] | None = None
    anchors: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    zones: list[dict[str, Any]] = Field(default_factory=list)
    """Safety zones checked on this frame (name, polygon in uv), to draw."""
    timings_ms: dict[str, float]
    camera: str
    t_capture_ms: float | None = None
    t_analysed_ms: float


class StrokeMessage(_Message):
    """Ink drawn on frame ``pts``: a freehand ``pen`` line or an ``arrow`` (first -> last point)."""

    type: Literal["stroke"] = "stroke"
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    pts: Pts
    tool: Literal["pen", "arrow"]
    points: list[Uv] = Field(min_length=2, max_length=2000)
    color: str = Field(default="#ff3b30", pattern=r"^#[0-9a-fA-F]{6}$")
    width: float = Field(default=0.006, gt=0, le=0.1)
    """Line width as a fraction of the frame width."""
    t_sent_ms: float | None = None
    # Set by the server: ``author`` on relayed strokes; ``seq`` is the stored event's number (the
    # author learns it from the ack, which comes once the stroke is committed).
    seq: int | None = None
    author: str | None = None


class _Recorded(_Message):
    """A message that becomes a session event: relayed to the room, stored, then acked to its
    author with the event's ``seq`` (``seq`` and ``author`` are set by the server)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    seq: int | None = None
    author: str | None = None
    t_sent_ms: float | None = None


class ChatMessage(_Recorded):
    """Text for everyone in the room (any participant)."""

    type: Literal["chat"] = "chat"
    text: str = Field(min_length=1, max_length=CHAT_MAX_CHARS)
    pts: Pts | None = None
    """The frame the text is about, if any."""


class FreezeMessage(_Recorded):
    """A mentor freezes everyone's view on frame ``pts`` (``on``) or lets the video run again."""

    type: Literal["freeze"] = "freeze"
    pts: Pts
    on: bool = True


class StepMessage(_Recorded):
    """A mentor marks the start of a step of the job at frame ``pts`` (training material)."""

    type: Literal["step"] = "step"
    pts: Pts
    title: str = Field(min_length=1, max_length=200)


class ConsentMessage(_Recorded):
    """The worker gives (``recording``: true) or withdraws consent to record the session."""

    type: Literal["consent"] = "consent"
    recording: bool


RecordedMessage = ChatMessage | FreezeMessage | StepMessage | ConsentMessage
RECORDED_TYPES: dict[str, type[RecordedMessage]] = {
    "chat": ChatMessage,
    "freeze": FreezeMessage,
    "step": StepMessage,
    "consent": ConsentMessage,
}


class AckMessage(_Message):
    """Server -> author: the message ``id`` (a stroke, chat, step ...) is stored as event
    ``seq``."""

    type: Literal["ack"] = "ack"
    id: str
    seq: int


class AnchorMessage(_Message):
    """Server -> everyone: where stroke ``id`` is fixed in the world.

    ``frame`` is "marker:<id>", "plane:<n>", "world" or "image" (not anchored: it stays where it
    was drawn). ``xyz`` are the stroke's points in that frame, metres, for a headset that renders
    ink natively; overlays carry its position on every later frame."""

    type: Literal["anchor"] = "anchor"
    id: str
    frame: str
    xyz: list[list[float]]


AnnotationMessage = Annotated[
    StrokeMessage
    | AckMessage
    | AnchorMessage
    | ChatMessage
    | FreezeMessage
    | StepMessage
    | ConsentMessage
    | RecordingMessage,
    Field(discriminator="type"),
]

_client_adapter: TypeAdapter[JoinMessage | OfferMessage | LeaveMessage | PingMessage] = TypeAdapter(
    ClientMessage
)


def _check_envelope(raw: str | bytes, limit: int) -> dict[str, Any]:
    if len(raw) > limit:
        raise ProtocolError("too_large", f"message of {len(raw)} bytes exceeds the {limit} limit")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_json", f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "message must be a JSON object")
    version = data.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "unsupported_version",
            f"protocol version {version!r} is not supported; "
            f"this server speaks v{PROTOCOL_VERSION}",
        )
    return data


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_client_message(
    raw: str | bytes, limit: int = 64 * 1024
) -> JoinMessage | OfferMessage | LeaveMessage | PingMessage:
    """Parse one signaling message; :class:`ProtocolError` says what is wrong with it."""
    data = _check_envelope(raw, limit)
    kind = data.get("type")
    if kind == "answer":
        raise ProtocolError(
            "out_of_order", "clients send offers and the server answers; an answer is not expected"
        )
    if kind not in ("join", "offer", "leave", "ping"):
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}")
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", f"invalid {kind!r} message: {_describe(exc)}") from None


def parse_telemetry(raw: str | bytes, limit: int = 64 * 1024) -> TelemetryMessage:
    data = _check_envelope(raw, limit)
    try:
        return TelemetryMessage.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", f"invalid telemetry: {_describe(exc)}") from None


def parse_annotation(raw: str | bytes, limit: int = 64 * 1024) -> StrokeMessage | RecordedMessage:
    """Parse a message a participant sends on the ``annotations`` channel: a stroke, or a chat,
    freeze, step or consent message."""
    data = _check_envelope(raw, limit)
    kind = data.get("type")
    model: type[StrokeMessage | RecordedMessage]
    if kind == "stroke":
        model = StrokeMessage
    elif isinstance(kind, str) and kind in RECORDED_TYPES:
        model = RECORDED_TYPES[kind]
    else:
        raise ProtocolError("unknown_type", f"unknown annotation type {kind!r}")
    if data.get("seq") is not None or data.get("author") is not None:
        raise ProtocolError("invalid", "seq and author are set by the server, not the client")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", f"invalid {kind}: {_describe(exc)}") from None
