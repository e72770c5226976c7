"""Crash-safe recording of one media track to a fragmented MP4, encoded on a thread of its own.

The event loop only reads the track (a one-frame relay subscription, read at full rate so nothing
queues upstream), notes each frame's pts and hands the frame to the recorder's thread through a
small bounded queue. When the thread falls behind, the *oldest* queued frame is dropped and
counted. The thread converts, encodes (H.264 / AAC) and muxes with PyAV; the loop never touches
pixels, the encoder or the file.

The file is a fragmented MP4 (``empty_moov`` + a fragment at least every ``fragment_s``, with a
keyframe every ``keyframe_s``) flushed to the kernel after every packet, so a process killed with
SIGKILL leaves a file that plays up to within about ``fragment_s`` of the kill.

Timestamps come from the frames: video pts (90 kHz, :func:`~server.rtc.clock.pts90k`) and audio
pts (samples) are re-based so the first recorded frame is at 0 (:attr:`RecordingResult.first_pts`
says where that was on the track's clock). Video frames whose pts does not increase are dropped;
gaps stay gaps (the previous picture holds). Audio gaps are filled with silence (up to
``max_gap_s``) so the audio keeps its place on the timeline; overlapping audio is dropped.

Frame size changes (a browser lowering its resolution) are **rescaled to the first frame's size**:
one continuous file, at the cost of stretching if the aspect ratio changes too.

A write error (full disk, ...) or any other failure inside the thread stops the recording: the
file is cut back to its last complete fragment (so it still plays), ``on_error`` is called on the
event loop, and the track keeps being drained so the session goes on. An exception raised by
``transform`` (e.g. a face blur) fails the recording too: no frame is ever written unblurred.

OpenCV 5 ships no Haar cascades (nor any other face model), so there is no built-in face blur:
pass one as ``transform``; it runs on the recorder's thread, on a BGR image, before encoding.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from server.rtc.clock import pts90k

__all__ = ["RecorderOptions", "RecorderStats", "RecordingResult", "TrackRecorder"]

logger = logging.getLogger(__name__)

Kind = Literal["video", "audio"]
Image = np.ndarray[Any, np.dtype[np.uint8]]
VIDEO_RATE = 90_000
AAC_FRAME = 1024  # samples per AAC frame


@dataclass(frozen=True)
class RecorderOptions:
    queue_frames: int = 8
    """Frames waiting for the recorder's thread; when full, the oldest is dropped."""
    fps: float = 30.0
    """Nominal video rate: sets the keyframe interval in frames and x264's rate control."""
    keyframe_s: float = 1.0
    """A keyframe at least this often (where a player can start, and where seeks land)."""
    fragment_s: float = 0.5
    """A fragment at least this often: about what a killed process loses at the end."""
    preset: str = "veryfast"
    """x264 preset. At 480p30 ``veryfast`` took 7.5 % of a core for ~350 kbit/s here;
    ``ultrafast`` 4.5 % for ~590 kbit/s (``python -m tests.bench.records``)."""
    crf: int = 28
    encoder_threads: int = 1
    """Threads of each H.264 encoder: 1 keeps one session's cost on its recorder thread."""
    audio_bitrate: int = 64_000
    audio_rate: int = 48_000
    max_gap_s: float = 10.0
    """Audio gaps up to this long are filled with silence; longer ones are cut short."""


@dataclass
class RecorderStats:
    """Live counters (read them anywhere; the loop and the thread each write their own)."""

    frames_seen: int = 0
    frames_dropped: int = 0
    """Dropped because the recorder's thread fell behind (the queue was full)."""
    frames_written: int = 0
    frames_skipped: int = 0
    """Dropped for a pts that did not move forward (or audio that overlapped)."""


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    kind: Kind
    status: Literal["complete", "failed"]
    frames: int
    """Frames encoded. A failed recording's file keeps those up to its last complete fragment."""
    dropped: int
    """Frames lost because the recorder fell behind, plus frames skipped for their pts."""
    duration_s: float
    """Media time covered, from the first frame to the end of the last one."""
    size_bytes: int
    sha256: str | None
    """Of the file as left on disk; ``None`` when no file was written (no frame arrived)."""
    error: str | None = None
    first_pts: int | None = None
    """The first frame's pts on the track's clock (90 kHz video, samples audio): file time 0."""


_END = object()


class _FrameQueue:
    """A bounded hand-off from the event loop to one thread that drops the oldest item."""

    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[object] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()

    def put(self, item: object) -> bool:
        """Add ``item``; True when that pushed out (dropped) the oldest item."""
        with self._cond:
            dropped = len(self._items) >= self._maxlen
            if dropped:
                self._items.popleft()
            self._items.append(item)
            self._cond.notify()
        return dropped

    def end(self) -> None:
        """Mark the end (never dropped; the thread finishes what is queued first)."""
        with self._cond:
            self._items.append(_END)
            self._cond.notify()

    def get(self) -> object:
        with self._cond:
            while not self._items:
                self._cond.wait()
            return self._items.popleft()


class TrackRecorder:
    """Records ``track`` to ``path`` (fragmented MP4) until the track ends or :meth:`aclose`.

    The recorder owns ``track`` (give it its own relay subscription): :meth:`aclose` stops it.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        path: Path,
        *,
        kind: Kind,
        on_error: Callable[[str], None] | None = None,
        transform: Callable[[Image], Image] | None = None,
        options: RecorderOptions | None = None,
        name: str = "recorder",
    ) -> None:
        if kind not in ("video", "audio"):
            raise ValueError(f"kind must be 'video' or 'audio', not {kind!r}")
        self.path = Path(path)
        self.kind: Kind = kind
        self.stats = RecorderStats()
        self._track = track
        self._on_error = on_error
        self._transform = transform
        self._options = options or RecorderOptions()
        self._name = name
        self._queue = _FrameQueue(self._options.queue_frames)
        self._failed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._result: asyncio.Future[RecordingResult] | None = None
        self._closing: asyncio.Task[RecordingResult] | None = None

    def start(self) -> None:
        if self._reader is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._result = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._reader = asyncio.create_task(self._read(), name=f"{self._name}-read")

    async def aclose(self) -> RecordingResult:
        """Stop reading, finish the file (in the thread) and return what was recorded.

        Safe to call more than once, and after the track ended by itself."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(), name=f"{self._name}-close")
        return await asyncio.shield(self._closing)

    # --- event loop side --------------------------------------------------------------------

    async def _read(self) -> None:
        wanted = av.VideoFrame if self.kind == "video" else av.AudioFrame
        try:
            while True:
                frame = await self._track.recv()
                if not isinstance(frame, wanted):
                    continue
                self.stats.frames_seen += 1
                if self._failed.is_set():
                    continue  # keep draining: the session goes on without its recording
                # Read the pts now: an encoder elsewhere may rebase a shared frame in place.
                pts = pts90k(frame) if isinstance(frame, av.VideoFrame) else _audio_pts(frame)
                if self._queue.put((pts, frame)):
                    self.stats.frames_dropped += 1
        except MediaStreamError:
            pass
        except Exception:
            logger.exception("%s: reading the track failed; finishing the file", self._name)
        finally:
            self._queue.end()

    async def _close(self) -> RecordingResult:
        if self._reader is None or self._result is None:
            self._track.stop()
            return self._summary(None, "the recorder was never started")
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        self._track.stop()
        return await self._result

    def _report_error(self, message: str) -> None:  # on the event loop
        if self._on_error is None:
            return
        try:
            self._on_error(message)
        except Exception:
            logger.exception("%s: on_error callback failed", self._name)

    # --- recorder thread --------------------------------------------------------------------

    def _run(self) -> None:
        sink: _Sink | None = None
        error: str | None = None
        try:
            if self.kind == "video":
                sink = _VideoSink(self.path, self._options, self._transform)
            else:
                sink = _AudioSink(self.path, self._options)
            self._record(sink)
            sink.finish()
        except Exception as exc:
            error = _describe(exc, self.path)
            logger.error("%s: recording stopped: %s", self._name, error)
            self._failed.set()
            self._call_soon(self._report_error, error)
            if sink is not None:
                sink.abandon()
        finally:
            result = self._summary(sink, error)
            self.stats.frames_skipped = 0 if sink is None else sink.skipped
            assert self._result is not None
            self._call_soon(_set_result, self._result, result)

    def _record(self, sink: _Sink) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            pts, frame = cast("tuple[int, Any]", item)
            sink.write(frame, pts)
            self.stats.frames_written = sink.frames

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody left to tell
            self._loop.call_soon_threadsafe(callback, *args)

    def _summary(self, sink: _Sink | None, error: str | None) -> RecordingResult:
        size, digest = 0, None
        if sink is not None and sink.opened:
            try:
                size, digest = _digest(self.path)
            except OSError as exc:
                error = error or _describe(exc, self.path)
        return RecordingResult(
            path=self.path,
            kind=self.kind,
            status="failed" if error is not None else "complete",
            frames=0 if sink is None else sink.frames,
            dropped=self.stats.frames_dropped + (0 if sink is None else sink.skipped),
            duration_s=0.0 if sink is None else round(sink.duration_s, 6),
            size_bytes=size,
            sha256=digest,
            error=error,
            first_pts=None if sink is None else sink.first_pts,
        )


def _set_result(future: asyncio.Future[RecordingResult], result: RecordingResult) -> None:
    if not future.done():
        future.set_result(result)


def _audio_pts(frame: av.AudioFrame) -> int:
    """An audio frame's pts in samples of its own rate."""
    if frame.pts is None:
        return 0
    base = frame.time_base
    if base is None or base == Fraction(1, frame.sample_rate):
        return int(frame.pts)
    return round(Fraction(frame.pts) * base * frame.sample_rate)


def _describe(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left for the recording {path} (the disk is full)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"cannot write the recording {path}: {os.strerror(exc.errno)}"
    return f"recording {path} failed: {type(exc).__name__}: {exc}"


def _digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


class _Sink:
    """One output file: an encoder and a fragmented-MP4 muxer (recorder thread only)."""

    def __init__(self, path: Path, options: RecorderOptions) -> None:
        self.path = path
        self.options = options
        self.container: Any = None
        self.stream: Any = None
        self.frames = 0
        self.skipped = 0
        self.first_pts: int | None = None
        self._good_size = 0
        """File size after the last successful mux: the end of the last complete fragment."""

    @property
    def opened(self) -> bool:
        return self.container is not None

    @property
    def duration_s(self) -> float:
        raise NotImplementedError

    def write(self, frame: Any, pts: int) -> None:
        raise NotImplementedError

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = {
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "frag_duration": str(round(self.options.fragment_s * 1_000_000)),
            "flush_packets": "1",  # every packet reaches the kernel: SIGKILL loses no buffer
        }
        self.container = av.open(str(self.path), "w", format="mp4", options=options)

    def _encode(self, frame: Any) -> None:
        packets = self.stream.encode(frame)
        if packets:
            self.container.mux(packets)
            self._good_size = os.path.getsize(self.path)

    def finish(self) -> None:
        if self.container is None:
            return
        self._encode(None)
        self.container.close()

    def abandon(self) -> None:
        """After an error: close what can be closed, then cut the file back to its last
        complete fragment so that it still plays."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):
            self.container.close()
        with contextlib.suppress(OSError):
            if os.path.getsize(self.path) > self._good_size:
                os.truncate(self.path, self._good_size)


class _VideoSink(_Sink):
    def __init__(
        self,
        path: Path,
        options: RecorderOptions,
        transform: Callable[[Image], Image] | None,
    ) -> None:
        super().__init__(path, options)
        self._transform = transform
        self._to_bgr = VideoReformatter()
        self._to_yuv = VideoReformatter()
        self._size = (0, 0)
        self._last = -1
        self._last_step = round(VIDEO_RATE / options.fps)

    @property
    def duration_s(self) -> float:
        return 0.0 if self.frames == 0 else (self._last + self._last_step) / VIDEO_RATE

    def write(self, frame: av.VideoFrame, pts: int) -> None:
        if self.first_pts is None:
            self._start(frame, pts)
        assert self.first_pts is not None
        rel = pts - self.first_pts
        if rel <= self._last:
            self.skipped += 1
            return
        width, height = self._size
        # The relay shares ``frame`` with other threads (the vision tap converts it too): never
        # use its own cached converter (an swscale context is not thread-safe) and never let the
        # encoder rebase it in place. This recorder's converters are its own.
        if self._transform is not None:
            bgr = self._to_bgr.reformat(frame, format="bgr24")
            image = self._transform(cast("Image", bgr.to_ndarray()))
            out = av.VideoFrame.from_ndarray(image, format="bgr24")
            out = self._to_yuv.reformat(out, width=width, height=height, format="yuv420p")
        else:
            out = self._to_yuv.reformat(frame, width=width, height=height, format="yuv420p")
            if out is frame:
                out = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        out.pts = rel
        out.time_base = Fraction(1, VIDEO_RATE)
        self._encode(out)
        if self._last >= 0:
            self._last_step = rel - self._last
        self._last = rel
        self.frames += 1

    def _start(self, frame: av.VideoFrame, pts: int) -> None:
        self._open()
        width, height = frame.width - frame.width % 2, frame.height - frame.height % 2
        self._size = (width, height)
        opts = self.options
        stream = self.container.add_stream(
            "libx264",
            rate=Fraction(opts.fps).limit_denominator(1001),
            options={"preset": opts.preset, "tune": "zerolatency", "crf": str(opts.crf)},
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, VIDEO_RATE)
        stream.codec_context.time_base = Fraction(1, VIDEO_RATE)
        stream.codec_context.gop_size = max(1, round(opts.fps * opts.keyframe_s))
        stream.codec_context.thread_count = opts.encoder_threads
        self.stream = stream
        self.first_pts = pts


class _AudioSink(_Sink):
    def __init__(self, path: Path, options: RecorderOptions) -> None:
        super().__init__(path, options)
        self._resampler: Any = None
        self._input: tuple[str, str, int] | None = None
        self._rate = 0  # of the input (pts are in its samples)
        self._next_in = 0  # where the next input frame should start, rebased
        self._samples_out = 0
        self._fifo = av.AudioFifo()

    @property
    def duration_s(self) -> float:
        return 0.0 if self._rate == 0 else self._next_in / self._rate

    def write(self, frame: av.AudioFrame, pts: int) -> None:
        if self.first_pts is None:
            self._open()
            layout = "mono" if frame.layout.nb_channels == 1 else "stereo"
            stream = self.container.add_stream("aac", rate=self.options.audio_rate, layout=layout)
            stream.bit_rate = self.options.audio_bitrate
            self.stream = stream
            self.first_pts, self._rate = pts, frame.sample_rate
        assert self.first_pts is not None
        if frame.sample_rate != self._rate:
            # A new rate restarts the clock: carry on from where the audio got to.
            self.first_pts = pts - round(self._next_in * frame.sample_rate / self._rate)
            self._next_in = round(self._next_in * frame.sample_rate / self._rate)
            self._rate = frame.sample_rate
        rel = pts - self.first_pts
        tolerance = frame.samples // 2
        if rel < self._next_in - tolerance:
            self.skipped += 1
            return
        gap = rel - self._next_in
        if gap > tolerance:
            fill = min(gap, round(self.options.max_gap_s * self._rate))
            self._silence(frame, fill)
            self.first_pts += gap - fill  # a gap cut short: what follows moves up
            self._next_in += fill
        # A copy: the relay shares the frame and the resampler must not touch the original.
        data = frame.to_ndarray()
        self._feed(_audio_frame(data, frame.format.name, frame.layout.name, frame.sample_rate))
        self._next_in += frame.samples
        self.frames += 1

    def _silence(self, like: av.AudioFrame, samples: int) -> None:
        sample = like.to_ndarray()
        channels = like.layout.nb_channels
        step = like.samples or 960
        while samples > 0:
            n = min(step, samples)
            dims = (channels, n) if like.format.is_planar else (1, n * channels)
            data = np.zeros(dims, dtype=sample.dtype)
            self._feed(_audio_frame(data, like.format.name, like.layout.name, like.sample_rate))
            samples -= n

    def _feed(self, frame: av.AudioFrame) -> None:
        """Resample to the encoder's format, then cut into the encoder's frame size."""
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self._input:  # the input format changed: a new resampler, same FIFO
            self._flush_resampler()
            codec = self.stream.codec_context
            self._resampler = av.AudioResampler(
                format=codec.format.name, layout=codec.layout.name, rate=self.options.audio_rate
            )
            self._input = key
        self._to_fifo(self._resampler.resample(frame))
        size = self.stream.codec_context.frame_size or AAC_FRAME
        while self._fifo.samples >= size:
            self._encode_out(self._fifo.read(size))

    def _to_fifo(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            out.pts = None  # the FIFO would insist on continuous pts; we count samples instead
            self._fifo.write(out)

    def _flush_resampler(self) -> None:
        if self._resampler is not None:
            self._to_fifo(self._resampler.resample(None))

    def _encode_out(self, out: av.AudioFrame | None) -> None:
        if out is None:
            return
        out.pts = self._samples_out
        out.time_base = Fraction(1, self.options.audio_rate)
        self._samples_out += out.samples
        self._encode(out)

    def finish(self) -> None:
        if self.container is None:
            return
        self._flush_resampler()
        if self._fifo.samples:
            self._encode_out(self._fifo.read())  # a short last frame is allowed
        super().finish()


def _audio_frame(data: np.ndarray[Any, Any], fmt: str, layout: str, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame
