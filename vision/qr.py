"""QR asset tags: decoded text -> a label, with the code's outline.

Two steps, because no single OpenCV QR reader is both fast and robust on a cluttered frame
(measured at 640x480, one core): ``cv2.QRCodeDetectorAruco.detectMulti`` finds candidate codes
in ~8 ms (60 ms on pure noise), but its decoder fails on most rotated or blurred codes;
``cv2.wechat_qrcode`` (no CNN model files needed) decodes nearly everything but takes 40-225 ms on
a textured frame and 2 s on noise. So the fast detector proposes regions and wechat decodes
only those crops (a few ms each). ``asset_names`` maps an asset-tag text (e.g.
``"ASSET-0042"``) to an equipment name; unmapped texts are used as the label verbatim
(stripped, at most 128 characters).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.results import DetectedObject
from vision.stages import FrameContext

__all__ = ["QrStage"]

_MAX_LABEL = 128
_MAX_CODES = 8


class QrStage:
    """Finds and decodes QR codes -> ``frame.objects`` (source "qr", score 1.0).

    ``corners`` are the code's four corners in uv (top-left, top-right, bottom-right,
    bottom-left of the code as printed). Codes that are found but cannot be decoded, and
    codes that decode to empty text, are left out. ``unmapped="drop"`` keeps only tags listed
    in ``asset_names``.
    """

    def __init__(
        self,
        asset_names: Mapping[str, str] | None = None,
        *,
        unmapped: str = "keep",
    ) -> None:
        if unmapped not in ("keep", "drop"):
            raise ValueError(f"unmapped must be 'keep' or 'drop', got {unmapped!r}")
        names = dict(asset_names or {})
        for tag, name in names.items():
            if not isinstance(tag, str) or not isinstance(name, str) or not name.strip():
                raise ValueError(f"asset_names must map text to a non-empty name, got {tag!r}")
        self.asset_names: Mapping[str, str] = MappingProxyType(names)
        self._keep_unmapped = unmapped == "keep"
        self._finder: Any = cv2.QRCodeDetectorAruco()
        self._reader: Any = cv2.wechat_qrcode.WeChatQRCode()

    def label_for(self, text: str) -> str | None:
        """The label shown for decoded ``text``, or None when it is not shown."""
        text = text.strip()
        if not text:
            return None
        if text in self.asset_names:
            return self.asset_names[text]
        return text[:_MAX_LABEL] if self._keep_unmapped else None

    def run(self, frame: FrameContext) -> None:
        gray = frame.gray
        if min(gray.shape) < 21:  # smaller than one version-1 code at a pixel per module
            return
        if self._finder is None:
            return  # closed
        ok, candidates = self._finder.detectMulti(gray)
        if not ok or candidates is None:
            return
        texts: list[str] = []
        quads: list[npt.NDArray[np.float64]] = []
        for candidate in np.asarray(candidates, np.float64).reshape(-1, 4, 2)[:_MAX_CODES]:
            for text, quad in self._read(gray, candidate):
                if text not in texts:  # two candidates on the same code
                    texts.append(text)
                    quads.append(quad)
        found = []
        size = np.array([frame.width, frame.height], dtype=np.float64)
        for text, quad in zip(texts, quads, strict=False):
            label = self.label_for(str(text))
            if label is None:
                continue
            pixels = np.asarray(quad, dtype=np.float64).reshape(4, 2)
            if not np.all(np.isfinite(pixels)):
                continue
            uv = (pixels + 0.5) / size
            lo = np.clip(uv.min(axis=0), 0.0, 1.0)
            hi = np.clip(uv.max(axis=0), 0.0, 1.0)
            found.append(
                DetectedObject(
                    label=label,
                    score=1.0,
                    bbox=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
                    source="qr",
                    corners=tuple((float(u), float(v)) for u, v in uv),
                )
            )
        if found:
            frame.objects = (*frame.objects, *found)

    def _read(
        self, gray: npt.NDArray[np.uint8], candidate: npt.NDArray[np.float64]
    ) -> list[tuple[str, npt.NDArray[np.float64]]]:
        """Decode the code around a candidate quad: (text, pixel corners) pairs."""
        height, width = gray.shape
        lo, hi = candidate.min(axis=0), candidate.max(axis=0)
        pad = 0.25 * float(max(hi - lo)) + 8.0  # the quiet zone and a detector that cut a corner
        x0, y0 = max(0, int(lo[0] - pad)), max(0, int(lo[1] - pad))
        x1, y1 = min(width, int(hi[0] + pad) + 1), min(height, int(hi[1] + pad) + 1)
        if x1 - x0 < 21 or y1 - y0 < 21:
            return []
        texts, quads = self._reader.detectAndDecode(np.ascontiguousarray(gray[y0:y1, x0:x1]))
        return [
            (str(text), np.asarray(quad, np.float64).reshape(4, 2) + [x0, y0])
            for text, quad in zip(texts, quads, strict=False)
        ]

    def close(self) -> None:
        self._finder = None
        self._reader = None
