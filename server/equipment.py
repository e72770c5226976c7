"""Registered equipment on the server: image files under the data directory, metadata in the
database, features in the shared :class:`vision.EquipmentLibrary` every room's pipeline reads."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import anyio
import cv2
import numpy as np

from sessions import EquipmentRecord, EquipmentStore
from vision import EquipmentError, EquipmentLibrary

__all__ = ["EquipmentService", "MAX_IMAGE_BYTES"]

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 16 * 1024 * 1024


class EquipmentService:
    def __init__(self, store: EquipmentStore, library: EquipmentLibrary, folder: Path) -> None:
        self.store = store
        self.library = library
        self.folder = folder

    async def load(self) -> None:
        """Register every stored reference image (at start-up)."""
        for record in await self.store.list():
            path = self.folder / record.filename
            try:
                data = await anyio.Path(path).read_bytes()
                await anyio.to_thread.run_sync(self._register, record.name, record.width_m, data)
            except (OSError, EquipmentError) as exc:
                logger.error("equipment %r not loaded: %s", record.name, exc)

    def _register(self, name: str, width_m: float, data: bytes) -> int:
        """Decode and add to the library; returns the number of features found."""
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise EquipmentError("the upload is not an image OpenCV can decode (PNG, JPEG, …)")
        reference = self.library.add(name, width_m, np.asarray(image, dtype=np.uint8))
        return len(reference.points)

    async def put(self, name: str, width_m: float, data: bytes, actor: str) -> EquipmentRecord:
        """Check the image (features, decodability) before anything is stored."""
        if not data:
            raise EquipmentError("empty upload: send the reference image as the request body")
        if len(data) > MAX_IMAGE_BYTES:
            raise EquipmentError(f"image of {len(data)} bytes exceeds {MAX_IMAGE_BYTES}")
        await anyio.to_thread.run_sync(self._register, name, width_m, data)
        digest = hashlib.sha256(data).hexdigest()
        filename = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:64]}-{digest[:12]}.img"
        await anyio.Path(self.folder).mkdir(parents=True, exist_ok=True)
        await anyio.Path(self.folder / filename).write_bytes(data)
        record, replaced = await self.store.put(name, width_m, filename, digest, actor)
        if replaced:
            await anyio.Path(self.folder / replaced).unlink(missing_ok=True)
        return record

    async def remove(self, name: str) -> None:
        record = await self.store.remove(name)
        self.library.remove(name)
        await anyio.Path(self.folder / record.filename).unlink(missing_ok=True)
