"""WebSocket signaling at ``/ws``: join a room, exchange SDP, hear who comes and goes.

One connection is one participant. The first message must be ``join`` (within
``JOIN_TIMEOUT_S``); then the client sends ``offer`` and gets ``answer`` (again at any time to
renegotiate). Recoverable mistakes get an ``error`` message and the connection stays; failures of
identity, version or size close the socket with a 4000-range code and a reason. Closing the socket
is leaving the room.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from server.errors import AuthError, RoomConflictError, RoomFullError
from server.protocol import (
    DATA_CHANNELS,
    AnswerMessage,
    CloseCode,
    ErrorMessage,
    JoinedMessage,
    JoinMessage,
    LeaveMessage,
    OfferMessage,
    PingMessage,
    PongMessage,
    ProtocolError,
    ServerMessage,
    parse_client_message,
)
from server.rtc.participant import Participant
from server.services import Services

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()

JOIN_TIMEOUT_S = 10.0
MAX_ERRORS = 20

#: Which participant roles each account role may take.
ALLOWED_ROLES: dict[str, frozenset[str]] = {
    "worker": frozenset({"worker"}),
    "mentor": frozenset({"mentor", "observer"}),
    "trainer": frozenset({"observer"}),
    "admin": frozenset({"mentor", "observer"}),
}


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason must fit in 123 bytes


@router.websocket("/ws")
async def signaling(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    connection = _Connection(websocket, services)
    await connection.run()


class _Connection:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.ws = websocket
        self.services = services
        self.participant: Participant | None = None
        self.errors = 0
        self._send_lock = asyncio.Lock()

    async def send(self, message: ServerMessage) -> None:
        async with self._send_lock:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.send_text(message.model_dump_json())

    async def run(self) -> None:
        try:
            try:
                raw = await asyncio.wait_for(self._receive(), JOIN_TIMEOUT_S)
            except TimeoutError:
                raise _Close(
                    CloseCode.OUT_OF_ORDER, f"no join message within {JOIN_TIMEOUT_S:.0f} s"
                ) from None
            await self._handle_first(raw)
            while True:
                raw = await self._receive()
                await self._handle(raw)
        except _Close as close:
            logger.info("closing signaling socket: %s (%d)", close.reason, close.code)
            await self._close(close.code, close.reason)
        except WebSocketDisconnect:
            pass
        finally:
            if self.participant is not None:
                participant, self.participant = self.participant, None
                # Leaving must complete even when this handler is being cancelled.
                await asyncio.shield(self.services.hub.leave_soon(participant))

    async def _receive(self) -> str | bytes:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes")
        return bytes(data) if data is not None else b""

    def _parse(self, raw: str | bytes) -> JoinMessage | OfferMessage | LeaveMessage | PingMessage:
        try:
            return parse_client_message(raw, self.services.settings.max_message_bytes)
        except ProtocolError as exc:
            if exc.code == "too_large":
                raise _Close(CloseCode.MESSAGE_TOO_LARGE, exc.message) from None
            if exc.code == "unsupported_version":
                raise _Close(CloseCode.UNSUPPORTED_VERSION, exc.message) from None
            raise

    async def _error(self, code: str, message: str) -> None:
        self.errors += 1
        if self.errors > MAX_ERRORS:
            raise _Close(CloseCode.TOO_MANY_ERRORS, "too many invalid messages")
        await self.send(ErrorMessage(code=code, message=message))

    async def _handle_first(self, raw: str | bytes) -> None:
        try:
            message = self._parse(raw)
        except ProtocolError as exc:
            raise _Close(CloseCode.BAD_MESSAGE, f"first message: {exc.message}") from None
        if not isinstance(message, JoinMessage):
            raise _Close(
                CloseCode.OUT_OF_ORDER, f"the first message must be join, not {message.type}"
            )
        await self._join(message)

    async def _join(self, message: JoinMessage) -> None:
        services = self.services
        try:
            identity = services.tokens.verify(message.token)
        except AuthError as exc:
            raise _Close(CloseCode.UNAUTHORIZED, exc.message) from None
        user = await services.users.get(identity.username)
        if user is None or user.disabled:
            raise _Close(CloseCode.UNAUTHORIZED, "this account no longer exists")
        if message.role not in ALLOWED_ROLES.get(identity.role, frozenset()):
            raise _Close(
                CloseCode.FORBIDDEN,
                f"a {identity.role} account cannot join as {message.role}",
            )
        participant = Participant(
            username=user.username,
            display_name=user.display_name or user.username,
            role=message.role,
            send_signal=self.send,
            options=services.peer_options,
        )
        try:
            room = await services.hub.join(message.room, participant)
        except RoomConflictError as exc:
            raise _Close(CloseCode.ROOM_CONFLICT, exc.message) from None
        except RoomFullError as exc:
            raise _Close(CloseCode.ROOM_FULL, exc.message) from None
        self.participant = participant
        await self.send(
            JoinedMessage(
                participant_id=participant.id,
                session_id=room.session_id,
                room=room.name,
                role=message.role,
                participants=[p.info for p in room.participants.values()],
                ice_servers=list(services.settings.ice_servers),
                data_channels={label: spec[0] for label, spec in DATA_CHANNELS.items()},
                recording=room.recording_state,
            )
        )

    async def _handle(self, raw: str | bytes) -> None:
        try:
            message = self._parse(raw)
        except ProtocolError as exc:
            await self._error(exc.code, exc.message)
            return
        participant = self.participant
        assert participant is not None
        if isinstance(message, JoinMessage):
            await self._error("already_joined", "this connection already joined a room")
        elif isinstance(message, OfferMessage):
            try:
                sdp = await participant.handle_offer(message.sdp)
            except Exception as exc:  # a broken SDP must not hurt anyone else
                logger.info("offer refused: %r", exc)
                await self._error("bad_offer", f"the offer could not be applied: {exc}")
                return
            await self.send(AnswerMessage(sdp=sdp))
        elif isinstance(message, PingMessage):
            await self.send(PongMessage(id=message.id))
        elif isinstance(message, LeaveMessage):
            raise _Close(1000, "left the room")

    async def _close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            try:
                if code != 1000:
                    await self.send(ErrorMessage(code=f"close_{code}", message=reason))
                await self.ws.close(code=code, reason=reason)
            except Exception:
                logger.debug("socket already closed", exc_info=True)
