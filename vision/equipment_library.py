"""The registry of equipment reference images, with features computed once per image.

Shared by every pipeline of a process (REST uploads add to it while stages read it); see
:mod:`vision.equipment` for how references are found in frames.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import VisionError

__all__ = ["EquipmentError", "EquipmentLibrary", "EquipmentReference", "ReferenceImageError"]

_U8 = npt.NDArray[np.uint8]


class EquipmentError(VisionError):
    """Registered-equipment input (a name, a size, a reference image) is not usable."""


class ReferenceImageError(EquipmentError):
    """A reference image cannot be recognised later: wrong type, too small, or featureless."""


@dataclass(frozen=True, slots=True, eq=False)
class EquipmentReference:
    """One registered reference image with its precomputed features."""

    name: str
    width_m: float
    """Physical width of what the image shows, metres; the height follows the aspect ratio."""
    height_m: float
    size_px: tuple[int, int]
    """(width, height) of the image the features were computed on."""
    points: npt.NDArray[np.float32] = field(repr=False)
    """(N, 2) keypoint positions, pixels of the (possibly downscaled) reference."""
    descriptors: _U8 = field(repr=False)
    """(N, 32) ORB descriptors."""
    image: _U8 = field(repr=False)
    """The grayscale reference the features come from (used to refine the fit)."""
    corners: npt.NDArray[np.float32] = field(repr=False)
    """(M, 2) strong corners of ``image``, tracked by optical flow to refine the homography."""


def _to_gray(image: object) -> _U8:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ReferenceImageError("a reference image must be a uint8 numpy array (gray/BGR/BGRA)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return np.asarray(cv2.cvtColor(image, code), dtype=np.uint8)
    raise ReferenceImageError(f"a reference image must be (H, W[, 1|3|4]), got {image.shape}")


class EquipmentLibrary:
    """Thread-safe registry of reference images, shared by the pipelines of one process.

    ``add`` computes features once (images larger than ``max_side`` pixels are downscaled
    first), so stages only match. Every change bumps ``version`` so that stages can notice it.
    """

    def __init__(
        self, *, max_features: int = 1000, min_features: int = 60, max_side: int = 640
    ) -> None:
        # A deep pyramid on the reference so that it still matches when it is small in a frame.
        self._orb = cv2.ORB.create(
            nfeatures=max_features, scaleFactor=1.2, nlevels=12, edgeThreshold=15, patchSize=15
        )
        self._min_features = min_features
        self._max_side = max_side
        self._lock = threading.Lock()
        self._items: dict[str, EquipmentReference] = {}
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def add(self, name: str, width_m: float, image: npt.NDArray[np.uint8]) -> EquipmentReference:
        """Register (or replace) reference ``name``; raises :class:`EquipmentError` if unusable."""
        if not isinstance(name, str) or not name.strip():
            raise EquipmentError(f"equipment name must be a non-empty string, got {name!r}")
        if (
            not isinstance(width_m, int | float)
            or isinstance(width_m, bool)
            or not math.isfinite(width_m)
            or width_m <= 0
        ):
            raise EquipmentError(f"{name!r}: width_m must be > 0 metres, got {width_m!r}")
        gray = _to_gray(image)
        height, width = gray.shape
        if min(width, height) < 32:
            raise ReferenceImageError(
                f"{name!r}: reference image is {width}x{height}; use at least 32x32 pixels "
                "(ideally 300-1000 px across, sharp and tightly cropped to the equipment)"
            )
        scale = min(1.0, self._max_side / max(width, height))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.uint8)
        with self._lock:  # one ORB object; detectAndCompute is not promised to be re-entrant
            keypoints, descriptors = self._orb.detectAndCompute(gray, None)
        count = 0 if descriptors is None else len(keypoints)
        if descriptors is None or count < self._min_features:
            raise ReferenceImageError(
                f"{name!r}: reference image has only {count} usable features (need "
                f"{self._min_features}); it looks flat or blurred. Use a sharp photo with "
                "visible texture, text or edges, cropped to the equipment"
            )
        h_px, w_px = gray.shape
        ref = EquipmentReference(
            name=name,
            width_m=float(width_m),
            height_m=float(width_m) * h_px / w_px,
            size_px=(w_px, h_px),
            points=np.array([kp.pt for kp in keypoints], dtype=np.float32),
            descriptors=np.asarray(descriptors, dtype=np.uint8),
            image=gray,
            corners=_strong_corners(gray),
        )
        with self._lock:
            self._items[name] = ref
            self._version += 1
        return ref

    def remove(self, name: str) -> bool:
        """Forget reference ``name``; False when it was not registered."""
        with self._lock:
            found = self._items.pop(name, None) is not None
            if found:
                self._version += 1
            return found

    def list(self) -> tuple[EquipmentReference, ...]:
        """The registered references, sorted by name."""
        with self._lock:
            return tuple(self._items[k] for k in sorted(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _strong_corners(gray: _U8, count: int = 200) -> npt.NDArray[np.float32]:
    found = cv2.goodFeaturesToTrack(gray, count, 0.01, max(5.0, min(gray.shape) / 40))
    if found is None:
        return np.zeros((0, 2), np.float32)
    return np.asarray(found, np.float32).reshape(-1, 2)
