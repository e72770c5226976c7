from __future__ import annotations

import time

import pytest

from server.rtc.participant import TokenBucket, _check_offer


def test_token_bucket_allows_burst_then_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    bucket = TokenBucket(rate=10.0, burst=5)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.1  # one token back
    assert bucket.take() and not bucket.take()
    now[0] += 100  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 5


@pytest.mark.parametrize(
    ("sdp", "words"),
    [
        ("hello", "must start with v=0"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no media sections"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "no data channel section"),
    ],
)
def test_offer_checks(sdp: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        _check_offer(sdp)
