from __future__ import annotations

import json

import pytest

from server.protocol import (
    JoinMessage,
    OfferMessage,
    ProtocolError,
    StrokeMessage,
    pack_depth,
    parse_annotation,
    parse_client_message,
    parse_depth,
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


# --- depth images on the telemetry channel ---------------------------------------------------


def test_depth_message_roundtrip_and_headset_framing_agree() -> None:
    from headset_client.rgbd import DepthImage
    from headset_client.rgbd import pack_depth as headset_pack

    png = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    raw = headset_pack(123_000, DepthImage(png, 0.0002))
    header, image = parse_depth(raw, 256 * 1024)
    assert (header.pts, header.scale_m, header.format, image) == (123_000, 0.0002, "png16", png)
    again = pack_depth(header, image)
    assert parse_depth(again, 256 * 1024) == (header, image)


def framed(header: bytes, image: bytes = b"png") -> bytes:
    return b"FSD1" + len(header).to_bytes(4, "big") + header + image


OK_HEADER = b'{"type":"depth","pts":1}'


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"garbage", "bad_message", "must be a depth message"),
        (b"FSD1" + (10**6).to_bytes(4, "big") + b"{}", "bad_message", "out of bounds"),
        (framed(b"[]"), "bad_message", "JSON object"),
        (framed(b"{nope"), "bad_json", "not valid JSON"),
        (framed(OK_HEADER, b""), "invalid", "no image"),
        (framed(b'{"type":"depth","pts":1,"x":1}'), "invalid", "depth header"),
        (framed(b'{"type":"depth","pts":1,"scale_m":5}'), "invalid", "scale_m"),
        (framed(b'{"type":"depth","pts":1,"v":9}'), "unsupported_version", "version"),
        (framed(OK_HEADER, b"x" * 300_000), "too_large", "limit"),
    ],
)
def test_bad_depth_messages_name_the_problem(raw: bytes, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_depth(raw, 256 * 1024)
    assert info.value.code == code and words in info.value.message, info.value.message
