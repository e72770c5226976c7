"""Faces blurred where the pose stage found people; the rest of the frame untouched."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from vision.pose import PoseEstimator, PoseOptions
from vision.privacy import blur_faces, face_boxes
from vision.results import Person


def test_the_astronauts_face_is_unrecognisable_and_nothing_else_changes() -> None:
    image = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # type: ignore[no-untyped-call]
    (person,) = PoseEstimator(PoseOptions(tracking=False)).process(image)
    (box,) = face_boxes([person], image.shape[1], image.shape[0])
    x0, y0, x1, y1 = box
    nose = np.asarray(person.keypoints[0][:2]) * (image.shape[1], image.shape[0])
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1
    out = blur_faces(image, [person])
    face, blurred = image[y0:y1, x0:x1], out[y0:y1, x0:x1]
    # detail gone: the Laplacian energy of the face drops by far
    energy = lambda a: float(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())  # noqa: E731
    assert energy(blurred) < 0.2 * energy(face)
    mask = np.ones(image.shape[:2], bool)
    mask[y0:y1, x0:x1] = False
    assert np.array_equal(out[mask], image[mask])
    assert blur_faces(image, []) is image  # nobody known: nothing to do


def test_faces_half_out_of_view_and_invisible_landmarks() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    edge = Person(1, tuple((0.99, 0.02, 1.0) for _ in range(33)), (0, 0, 1, 1), 0.9)
    hidden = Person(2, tuple((0.5, 0.5, 0.0) for _ in range(33)), (0, 0, 1, 1), 0.9)
    boxes = face_boxes([edge, hidden], 200, 100)
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 100
    assert blur_faces(image, [edge, hidden]).shape == image.shape
