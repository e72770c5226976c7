"""The track recorder: fragmented MP4 off the event loop, playable after a crash or a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from headset_client.sources import decode_frame_code
from server.rtc.recorder import RecorderOptions, RecordingResult, TrackRecorder
from tests.bench.stats import percentile
from tests.unit.server.recorder_child import (
    AUDIO_RATE,
    AUDIO_SAMPLES,
    PacedAudioTrack,
    PacedVideoTrack,
)
from tests.util import eventually

REPO = Path(__file__).resolve().parents[3]
FRAME_S = 1 / 30
AAC_FRAME_S = 1024 / AUDIO_RATE


@dataclass
class DecodedVideo:
    times: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    errors: int = 0
    """Packets the decoder refused (a truncated last fragment, after a crash)."""
    lower_half: list[float] = field(default_factory=list)


def decode_video(path: Path) -> DecodedVideo:
    """Every frame that decodes, packet by packet (as a player would, skipping bad packets)."""
    out = DecodedVideo()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                out.errors += 1
                continue
            for frame in frames:
                gray = frame.to_ndarray(format="gray")
                out.times.append(float(frame.pts * frame.time_base))
                out.codes.append(decode_frame_code(gray))
                out.sizes.add((frame.width, frame.height))
                out.lower_half.append(float(gray[gray.shape[0] // 2 :].mean()))
    return out


def decode_audio(path: Path) -> tuple[list[float], int, int]:
    """(frame start times, decoded samples, sample rate)."""
    times, samples = [], 0
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        for frame in container.decode(audio=0):
            times.append(float(frame.pts * frame.time_base))
            samples += frame.samples
    return times, samples, rate


def assert_file_matches(result: RecordingResult) -> None:
    data = result.path.read_bytes()
    assert result.size_bytes == len(data) > 0
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def assert_in_order(codes: list[int], *, min_exact: float = 0.95) -> None:
    """Frame counters decode back increasing; a few may be misread (codec loss)."""
    exact = [c for c in codes if c < 1000]
    assert len(exact) >= min_exact * len(codes), codes
    assert exact == sorted(exact), codes


class NoFrames(MediaStreamTrack):
    kind = "video"

    async def recv(self) -> av.VideoFrame:
        await asyncio.Event().wait()
        raise MediaStreamError


class LoopLag:
    """How late the event loop wakes up for a 5 ms sleep, sampled continuously."""

    def __init__(self) -> None:
        self.samples_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.samples_ms.append((time.perf_counter() - started - 0.005) * 1000)

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_video_and_audio_are_recorded_off_the_loop(tmp_path: Path) -> None:
    """3 s of 640x480@30 video and 48 kHz audio; the tracks end by themselves (the files are
    finished cleanly), every frame decodes back in order, and the event loop stays responsive."""
    lag = LoopLag()
    lag.start()
    video = TrackRecorder(PacedVideoTrack(90), tmp_path / "v.mp4", kind="video", name="rec-v")
    audio = TrackRecorder(PacedAudioTrack(150), tmp_path / "a.mp4", kind="audio", name="rec-a")
    video.start()
    audio.start()
    await eventually(lambda: video.stats.frames_written >= 90, 10, "all video frames")
    await eventually(lambda: audio.stats.frames_seen >= 150, 10, "all audio frames")
    v, a = await video.aclose(), await audio.aclose()
    await lag.stop()

    assert (v.status, v.error, v.frames, v.dropped, v.first_pts) == ("complete", None, 90, 0, 0)
    assert v.duration_s == pytest.approx(3.0, abs=1e-6)
    assert_file_matches(v)
    decoded = decode_video(v.path)
    assert decoded.errors == 0
    assert len(decoded.times) == 90
    assert decoded.times == sorted(set(decoded.times))
    assert decoded.times[0] == 0
    assert decoded.times[-1] + FRAME_S == pytest.approx(3.0, abs=FRAME_S)
    assert decoded.sizes == {(640, 480)}
    assert_in_order(decoded.codes)
    assert sum(c == i for i, c in enumerate(decoded.codes)) >= 85

    assert (a.status, a.frames, a.dropped) == ("complete", 150, 0)
    assert a.duration_s == pytest.approx(3.0)
    assert_file_matches(a)
    times, samples, rate = decode_audio(a.path)
    assert rate == AUDIO_RATE
    assert times == sorted(times)
    assert abs(samples / rate - 3.0) <= 2 * AAC_FRAME_S  # encoder priming + last frame padding

    p50, p99 = percentile(lag.samples_ms, 50), percentile(lag.samples_ms, 99)
    print(f"loop lag while recording 480p30 + audio: p50 {p50} ms, p99 {p99} ms")
    assert p99 is not None and p99 < 20, lag.samples_ms


def _read_progress(process: subprocess.Popen[str], until: int, within: float) -> int:
    """The child's ``frame I`` lines until frame ``until``; returns the last index seen."""
    assert process.stdout is not None
    last, deadline = -1, time.monotonic() + within
    while last < until:
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"the recording child got to frame {last} only")
        line = process.stdout.readline()
        if line.startswith("frame "):
            last = int(line.split()[1])
    return last


def test_a_killed_recorder_leaves_a_playable_file(tmp_path: Path) -> None:
    """SIGKILL after ~3 s: the file plays, up to within a second of the kill."""
    out = tmp_path / "crash.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.server.recorder_child", str(out), "--seconds", "60"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _read_progress(process, until=93, within=30)
    finally:
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate(timeout=10)
    produced = [int(line.split()[1]) for line in rest.splitlines() if line.startswith("frame ")]
    last_produced = max([93, *produced])  # the last frame the track handed over before the kill

    decoded = decode_video(out)
    assert len(decoded.times) >= 60, decoded.times
    assert decoded.times == sorted(decoded.times)
    assert_in_order(decoded.codes)
    assert decoded.errors <= 1  # at most a last fragment cut mid-write
    tail_s = last_produced * FRAME_S - decoded.times[-1]
    lost_frames = last_produced - max(c for c in decoded.codes if c < 1000)
    print(
        f"crash: {last_produced + 1} frames produced, last decodable at {decoded.times[-1]:.3f} s,"
        f" tail lost {tail_s:.3f} s ({lost_frames} frames)"
    )
    assert 0 <= tail_s < 1.0
    assert lost_frames * FRAME_S < 1.0


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the file-size-limit test covers this)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_full_disk_fails_the_recording_and_the_track_keeps_flowing(
    tmp_path: Path,
) -> None:
    """A real full filesystem (a 96 KiB tmpfs): on_error once, on the loop's thread; status
    failed; the track is still drained to its end; the file is cut back to whole fragments."""
    with small_tmpfs(tmp_path / "disk", "96k") as disk:
        errors: list[tuple[str, str]] = []
        track = PacedVideoTrack(90)
        recorder = TrackRecorder(
            track,
            disk / "full.mp4",
            kind="video",
            on_error=lambda m: errors.append((m, threading.current_thread().name)),
        )
        recorder.start()
        await eventually(lambda: errors, 10, "the disk to fill up")
        await eventually(lambda: track.index >= 90, 10, "the track to be drained")
        result = await recorder.aclose()
        assert recorder.stats.frames_seen == 90
        assert result.status == "failed"
        assert result.error is not None and "no space left" in result.error
        assert errors == [(result.error, threading.current_thread().name)]
        assert 0 < result.frames < 90
        assert_file_matches(result)
        decoded = decode_video(result.path)
    assert decoded.errors == 0
    assert 0 < len(decoded.times) <= result.frames
    assert_in_order(decoded.codes)


def test_a_write_error_keeps_the_file_playable(tmp_path: Path) -> None:
    """Without root: the kernel's file-size limit makes the writes fail (EFBIG) in a child."""
    out = tmp_path / "limited.mp4"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.unit.server.recorder_child",
            str(out),
            "--seconds",
            "3",
            "--file-limit",
            "100000",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("result "))
    result: dict[str, Any] = json.loads(line.removeprefix("result "))
    assert result["status"] == "failed"
    assert result["errors"] == [result["error"]] and "File too large" in result["error"]
    assert result["seen"] == result["produced"] >= 85  # drained after the failure too
    assert result["size_bytes"] == out.stat().st_size <= 100_000
    assert result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    decoded = decode_video(out)
    assert decoded.errors == 0
    assert 15 <= len(decoded.times) <= result["frames"]
    assert_in_order(decoded.codes)


async def test_a_track_that_ends_finishes_the_file_by_itself(tmp_path: Path) -> None:
    """No aclose needed: at the track's end the thread writes the trailer (the ``mfra`` index,
    whose ``mfro`` box closes the file) and the file is complete."""
    path = tmp_path / "end.mp4"
    recorder = TrackRecorder(PacedVideoTrack(30, 60), path, kind="video")
    recorder.start()

    def finished() -> bool:
        return path.exists() and path.read_bytes()[-12:-8] == b"mfro"

    await eventually(finished, 10, "the trailer")
    result = await recorder.aclose()
    assert (result.status, result.frames) == ("complete", 30)
    assert_file_matches(result)
    assert len(decode_video(path).times) == 30


async def test_frames_that_change_size_are_rescaled_to_the_first_size(tmp_path: Path) -> None:
    def size_of(i: int) -> tuple[int, int]:
        return (640, 480) if i < 20 else (480, 360) if i < 40 else (320, 240)

    recorder = TrackRecorder(
        PacedVideoTrack(60, 60, size_of=size_of), tmp_path / "s.mp4", kind="video"
    )
    recorder.start()
    await eventually(lambda: recorder.stats.frames_written >= 60, 10, "all frames")
    result = await recorder.aclose()
    assert (result.status, result.frames) == ("complete", 60)
    decoded = decode_video(result.path)
    assert decoded.sizes == {(640, 480)}
    assert len(decoded.times) == 60
    assert_in_order(decoded.codes)


async def test_gaps_stay_and_pts_that_go_back_are_dropped(tmp_path: Path) -> None:
    ticks = [i * 3000 for i in range(20)] + [(i + 15) * 3000 for i in range(20, 40)]
    ticks[10] = ticks[9]  # a repeat
    ticks[30] = 5 * 3000  # a jump back
    recorder = TrackRecorder(
        PacedVideoTrack(40, 120, pts_of=lambda i: 900_000 + ticks[i]),
        tmp_path / "g.mp4",
        kind="video",
    )
    recorder.start()
    await eventually(lambda: recorder.stats.frames_seen >= 40, 10, "all frames")
    result = await recorder.aclose()
    assert (result.status, result.frames, result.dropped, result.first_pts) == (
        "complete",
        38,
        2,
        900_000,
    )
    kept = [t for i, t in enumerate(ticks) if i not in (10, 30)]
    assert result.duration_s == pytest.approx((kept[-1] + 3000) / 90_000)
    decoded = decode_video(result.path)
    assert decoded.times == pytest.approx([t / 90_000 for t in kept], abs=1e-4)
    assert_in_order(decoded.codes)


async def test_audio_only_mono_with_a_gap(tmp_path: Path) -> None:
    """Audio gaps become silence, so the audio keeps its place on the timeline."""

    def pts_of(i: int) -> int:
        return (i + (10 if i >= 50 else 0)) * AUDIO_SAMPLES  # 200 ms lost after 1 s

    recorder = TrackRecorder(
        PacedAudioTrack(100, channels=1, pts_of=pts_of), tmp_path / "m.mp4", kind="audio"
    )
    recorder.start()
    await eventually(lambda: recorder.stats.frames_seen >= 100, 10, "all frames")
    result = await recorder.aclose()
    assert (result.status, result.frames, result.dropped) == ("complete", 100, 0)
    assert result.duration_s == pytest.approx(110 * AUDIO_SAMPLES / AUDIO_RATE)
    assert_file_matches(result)
    with av.open(str(result.path)) as container:
        assert container.streams.audio[0].codec_context.layout.name == "mono"
    times, samples, rate = decode_audio(result.path)
    assert times == sorted(times)
    assert abs(samples / rate - result.duration_s) <= 2 * AAC_FRAME_S


async def test_audio_whose_layout_changes_keeps_its_timeline(tmp_path: Path) -> None:
    recorder = TrackRecorder(
        PacedAudioTrack(100, channels_of=lambda i: 2 if i < 33 else 1),
        tmp_path / "l.mp4",
        kind="audio",
    )
    recorder.start()
    await eventually(lambda: recorder.stats.frames_seen >= 100, 10, "all frames")
    result = await recorder.aclose()
    assert (result.status, result.frames) == ("complete", 100)
    times, samples, rate = decode_audio(result.path)
    assert times == sorted(times)
    assert abs(samples / rate - 2.0) <= 2 * AAC_FRAME_S


async def test_transform_runs_on_the_recorder_thread(tmp_path: Path) -> None:
    threads: set[str] = set()

    def blank_lower_half(image: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        image = image.copy()
        image[image.shape[0] // 2 :] = 0
        return image

    recorder = TrackRecorder(
        PacedVideoTrack(30, 60),
        tmp_path / "t.mp4",
        kind="video",
        transform=blank_lower_half,
        name="rec-blur",
    )
    recorder.start()
    await eventually(lambda: recorder.stats.frames_written >= 30, 10, "all frames")
    result = await recorder.aclose()
    assert threads == {"rec-blur"}
    decoded = decode_video(result.path)
    assert len(decoded.times) == 30 and max(decoded.lower_half) < 20
    assert_in_order(decoded.codes)


async def test_a_failing_transform_fails_the_recording(tmp_path: Path) -> None:
    """A face blur that breaks must not let unblurred frames through."""

    def broken(image: np.ndarray) -> np.ndarray:
        raise RuntimeError("detector crashed")

    errors: list[str] = []
    track = PacedVideoTrack(20, 100)
    recorder = TrackRecorder(
        track, tmp_path / "b.mp4", kind="video", transform=broken, on_error=errors.append
    )
    recorder.start()
    await eventually(lambda: track.index >= 20, 10, "the track to be drained")
    result = await recorder.aclose()
    assert result.status == "failed" and result.frames == 0
    assert errors == [result.error] and "detector crashed" in errors[0]


async def test_a_slow_recorder_drops_the_oldest_frames_instead_of_queueing(tmp_path: Path) -> None:
    def slow(image: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return image

    track = PacedVideoTrack(60, 200)
    recorder = TrackRecorder(
        track,
        tmp_path / "d.mp4",
        kind="video",
        transform=slow,
        options=RecorderOptions(queue_frames=4),
    )
    recorder.start()
    await eventually(lambda: track.index >= 60, 10, "the track to be drained")
    await asyncio.sleep(0)
    assert recorder.stats.frames_seen == 60  # read at full rate, whatever the encoder does
    result = await recorder.aclose()
    assert result.status == "complete"
    assert result.dropped == recorder.stats.frames_dropped > 30
    assert result.frames + result.dropped == 60
    decoded = decode_video(result.path)
    assert len(decoded.times) == result.frames
    assert decoded.codes[-1] == 59  # the newest frames survive, the oldest were dropped
    assert_in_order(decoded.codes)


async def test_aclose_is_idempotent_and_an_empty_recording_writes_no_file(tmp_path: Path) -> None:
    recorder = TrackRecorder(NoFrames(), tmp_path / "e.mp4", kind="video")
    recorder.start()
    await asyncio.sleep(0)
    first, second = await asyncio.gather(recorder.aclose(), recorder.aclose())
    third = await recorder.aclose()
    assert first == second == third
    assert (first.status, first.frames, first.size_bytes, first.sha256) == ("complete", 0, 0, None)
    assert not (tmp_path / "e.mp4").exists()

    never = TrackRecorder(PacedVideoTrack(1), tmp_path / "n.mp4", kind="audio")
    result = await never.aclose()
    assert result.status == "failed" and result.error == "the recorder was never started"


async def test_aclose_twice_after_recording(tmp_path: Path) -> None:
    recorder = TrackRecorder(PacedVideoTrack(None), tmp_path / "c.mp4", kind="video")
    recorder.start()
    await eventually(lambda: recorder.stats.frames_written >= 10, 10, "some frames")
    first = await recorder.aclose()
    assert first.status == "complete" and first.frames >= 10
    assert await recorder.aclose() == first
    assert_file_matches(first)
    assert len(decode_video(first.path).times) == first.frames
