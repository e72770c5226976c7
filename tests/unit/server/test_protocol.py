from __future__ import annotations

import json

import pytest

from server.protocol import (
    JoinMessage,
    OfferMessage,
    ProtocolError,
    StrokeMessage,
    parse_annotation,
    parse_client_message,
    parse_telemetry,
)


def test_join_roundtrip() -> None:
    raw = json.dumps({"v": 1, "type": "join", "token": "t", "room": "pump-7", "role": "mentor"})
    msg = parse_client_message(raw)
    assert isinstance(msg, JoinMessage)
    assert (msg.room, msg.role) == ("pump-7", "mentor")


def test_version_defaults_to_current() -> None:
    assert isinstance(parse_client_message('{"type":"offer","sdp":"x"}'), OfferMessage)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"v":2,"type":"offer","sdp":"x"}', "unsupported_version"),
        ('{"type":"answer","sdp":"x"}', "out_of_order"),
        ('{"type":"join","token":"t","room":"bad room!","role":"mentor"}', "invalid"),
        ('{"type":"join","token":"t","room":"r","role":"pilot"}', "invalid"),
        ('{"type":"offer","sdp":"x","extra":1}', "invalid"),
        (b"\xff\xfe", "bad_json"),
    ],
)
def test_bad_messages_name_the_problem(raw: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code == code
    assert info.value.message


def test_oversize_message_refused_before_parsing() -> None:
    raw = json.dumps({"type": "offer", "sdp": "x" * 5000})
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw, limit=1024)
    assert info.value.code == "too_large"


def stroke(**overrides: object) -> str:
    base: dict[str, object] = {
        "v": 1,
        "type": "stroke",
        "id": "s1",
        "pts": 3000,
        "tool": "pen",
        "points": [[0.1, 0.2], [0.3, 0.4]],
    }
    base.update(overrides)
    return json.dumps(base)


def test_stroke_parses_with_defaults() -> None:
    msg = parse_annotation(stroke())
    assert isinstance(msg, StrokeMessage)
    assert msg.color == "#ff3b30" and msg.seq is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"points": [[0.1, 0.2]]},
        {"points": [[0.1, 0.2, 0.3], [0.1, 0.2]]},
        {"points": [[9.0, 0.2], [0.1, 0.2]]},
        {"tool": "laser"},
        {"pts": -1},
        {"color": "red"},
        {"id": "has space"},
        {"seq": 5},
        {"author": "mallory"},
    ],
)
def test_invalid_strokes(overrides: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        parse_annotation(stroke(**overrides))


def test_telemetry() -> None:
    msg = parse_telemetry(
        json.dumps(
            {
                "type": "telemetry",
                "pts": 90000,
                "head_pose": [0.0] * 16,
                "intrinsics": {
                    "fx": 500,
                    "fy": 500,
                    "cx": 320,
                    "cy": 240,
                    "width": 640,
                    "height": 480,
                },
            }
        )
    )
    assert msg.pts == 90000 and msg.intrinsics is not None
    with pytest.raises(ProtocolError):
        parse_telemetry(json.dumps({"type": "telemetry", "pts": 1, "head_pose": [0.0] * 15}))


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_telemetry_refuses_non_finite_numbers(bad: str) -> None:
    intrinsics = f'{{"fx":{bad},"fy":500,"cx":320,"cy":240,"width":640,"height":480}}'
    raw = f'{{"type":"telemetry","pts":1,"intrinsics":{intrinsics}}}'
    with pytest.raises(ProtocolError):
        parse_telemetry(raw)
