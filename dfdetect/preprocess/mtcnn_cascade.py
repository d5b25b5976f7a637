"""The MTCNN cascade (Zhang et al. 2016) over facenet-pytorch's P-, R- and O-nets and weights.

facenet-pytorch resizes every pyramid level and every R-/O-net input crop with torch's area
interpolation (adaptive average pooling) of the whole float image, which is most of its run time
on large frames. Here the same area averages are read off one integral image per frame, so the
nets see the same inputs and the boxes equal those of ``facenet_pytorch.MTCNN.detect`` (up to
float rounding), at a fraction of the cost. The cascade also takes ``skip_levels``: leaving out
the first (largest, costliest) pyramid levels of a min-face-20 run only stops it from finding
faces smaller than ``minsize / factor**skip_levels`` while the levels it keeps, and so the boxes
of larger faces, stay those of the full run.

Conventions follow facenet-pytorch: boxes ``x1, y1, x2, y2`` in pixels, crops of rows
``[trunc(y1) - 1, trunc(y2))`` clipped to the image, regression offsets scaled by ``x2 - x1``
in the first stage and ``x2 - x1 + 1`` later, a "min" overlap NMS at the end.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torchvision.ops import nms

_NORM_MEAN, _NORM_SCALE = 127.5, 0.0078125
_INT32_SAFE_PIXELS = (2**31 - 1) // 255


class AreaSampler:
    """Area-averaged resampling of axis-aligned regions of one RGB uint8 image, as torch's
    ``interpolate(mode="area")`` computes it: output cell ``i`` of ``n`` over a span of ``L``
    pixels averages pixels ``floor(i L / n)`` to ``ceil((i + 1) L / n) - 1``."""

    def __init__(
        self, image: np.ndarray, origin: tuple[int, int] = (0, 0), full: tuple[int, int] | None = None
    ):
        """``image`` may be a part of a larger frame of ``full`` = (height, width) pixels, whose
        top-left pixel is ``origin`` = (x, y) of that frame: coordinates stay the frame's, and
        only regions inside the part can be read (``inside``)."""
        self.part_height, self.part_width = image.shape[:2]
        self.height, self.width = full or image.shape[:2]
        self.ox, self.oy = origin
        depth = cv2.CV_32S if self.part_height * self.part_width <= _INT32_SAFE_PIXELS else cv2.CV_64F
        self.integral = cv2.integral(np.ascontiguousarray(image), sdepth=depth)

    def inside(self, y0, y1, x0, x1) -> np.ndarray:
        return (
            (x0 >= self.ox)
            & (y0 >= self.oy)
            & (x1 <= self.ox + self.part_width)
            & (y1 <= self.oy + self.part_height)
        )

    @staticmethod
    def _edges(start: np.ndarray, length: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(cells)
        lo = start[:, None] + (i[None, :] * length[:, None]) // cells
        hi = start[:, None] - ((-(i[None, :] + 1) * length[:, None]) // cells)
        return lo, hi

    def regions(self, y0, y1, x0, x1, size: tuple[int, int]) -> torch.Tensor:
        """Regions ``[y0, y1) x [x0, x1)`` (arrays of K) resampled to ``size`` = (rows, cols):
        float32 ``(K, 3, rows, cols)``, normalised like facenet-pytorch."""
        y0, y1, x0, x1 = (np.asarray(v, dtype=np.int64) for v in (y0, y1, x0, x1))
        rlo, rhi = self._edges(y0, y1 - y0, size[0])
        clo, chi = self._edges(x0, x1 - x0, size[1])
        rlo, rhi, clo, chi = rlo - self.oy, rhi - self.oy, clo - self.ox, chi - self.ox
        ii = self.integral
        sums = (
            ii[rhi[:, :, None], chi[:, None, :]]
            - ii[rlo[:, :, None], chi[:, None, :]]
            - ii[rhi[:, :, None], clo[:, None, :]]
            + ii[rlo[:, :, None], clo[:, None, :]]
        ).astype(np.float32)
        rows = (rhi - rlo).astype(np.float32)[:, :, None, None]
        cols = (chi - clo).astype(np.float32)[:, None, :, None]
        return _normalised(sums / rows / cols)

    def level_edges(self, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """Source pixel spans ``[lo, hi)`` of the rows and of the columns of the whole frame
        resampled to ``size``: ``rlo, rhi, clo, chi``."""
        zero = np.zeros(1, dtype=np.int64)
        (rlo,), (rhi,) = self._edges(zero, zero + self.height, size[0])
        (clo,), (chi,) = self._edges(zero, zero + self.width, size[1])
        return rlo, rhi, clo, chi

    def whole(
        self, size: tuple[int, int], rows: slice = slice(None), cols: slice = slice(None)
    ) -> torch.Tensor:
        """The whole frame resampled to ``size``: ``(1, 3, rows, cols)`` (separable, row sums
        first); ``rows``/``cols`` take a window of it (cells inside the part only)."""
        rlo, rhi, clo, chi = self.level_edges(size)
        rlo, rhi, clo, chi = (
            rlo[rows] - self.oy,
            rhi[rows] - self.oy,
            clo[cols] - self.ox,
            chi[cols] - self.ox,
        )
        strips = self.integral[rhi] - self.integral[rlo]
        sums = (strips[:, chi] - strips[:, clo]).astype(np.float32)
        nrows = (rhi - rlo).astype(np.float32)[:, None, None]
        ncols = (chi - clo).astype(np.float32)[None, :, None]
        return _normalised((sums / nrows / ncols)[None])


def _normalised(means: np.ndarray) -> torch.Tensor:
    """(K, rows, cols, 3) pixel means -> facenet's net input, channels-last (K, 3, rows, cols)."""
    out = (means - np.float32(_NORM_MEAN)) * np.float32(_NORM_SCALE)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2)


def pyramid_scales(height: int, width: int, minsize: float, factor: float) -> list[float]:
    """facenet-pytorch's scale ladder: 12/minsize, times factor, while the short side stays >= 12."""
    scale, short = 12.0 / minsize, min(height, width) * (12.0 / minsize)
    scales = []
    while short >= 12:
        scales.append(scale)
        scale *= factor
        short *= factor
    return scales


def levels_to_skip(min_face: float, minsize: float, factor: float) -> int:
    """How many leading levels of a ``minsize`` ladder find only faces smaller than ``min_face``."""
    if min_face <= minsize:
        return 0
    return max(0, math.floor(math.log(minsize / min_face) / math.log(factor) + 1e-9))


def _window_cells(edges, window: tuple[int, int, int, int]):
    """The cells of a pyramid level whose source spans lie inside ``window`` = (x0, y0, x1, y1):
    ``(r0, r1), (c0, c1)``, starting at even cells (P-net's stride), or None when fewer than 12
    (P-net's input) fit."""
    rlo, rhi, clo, chi = edges
    x0, y0, x1, y1 = window
    spans = []
    for lo, hi, a, b in ((rlo, rhi, y0, y1), (clo, chi, x0, x1)):
        inside = np.flatnonzero((lo >= a) & (hi <= b))
        if len(inside) < 12:
            return None
        first = int(inside[0]) + int(inside[0]) % 2
        last = int(inside[-1]) + 1
        if last - first < 12:
            return None
        spans.append((first, last))
    return spans


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Square boxes around the same centre, side = the longer side (facenet's ``rerec``)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _refine(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply regression offsets scaled by the inclusive box size (facenet's ``bbreg``)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + offsets[:, 0] * w
    out[:, 1] = boxes[:, 1] + offsets[:, 1] * h
    out[:, 2] = boxes[:, 2] + offsets[:, 2] * w
    out[:, 3] = boxes[:, 3] + offsets[:, 3] * h
    return out


def _crop_spans(boxes: torch.Tensor, width: int, height: int):
    """Integer crop spans ``[y0, y1) x [x0, x1)`` of the boxes inside the image, and which boxes
    have a non-empty one."""
    b = boxes[:, :4].trunc().int().numpy()
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], width)
    y1 = np.minimum(b[:, 3], height)
    valid = (x1 > x0) & (y1 > y0)
    return y0, y1, x0, x1, valid


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS where overlap = intersection / smaller area (inclusive pixel areas)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    keep = []
    while order.size:
        best, rest = order[-1], order[:-1]
        keep.append(best)
        iw = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = iw * ih / np.minimum(area[best], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


class MTCNNCascade:
    def __init__(self, pnet, rnet, onet, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        # channels-last: several times faster max-pooling on CPU, same results up to float rounding
        self.pnet, self.rnet, self.onet = (
            net.eval().to(memory_format=torch.channels_last) for net in (pnet, rnet, onet)
        )
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)

    def _proposals(
        self, sampler: AreaSampler, minsize: float, skip_levels: int, window: tuple[int, int, int, int] | None
    ) -> torch.Tensor:
        h, w = sampler.height, sampler.width
        found = []
        for scale in pyramid_scales(h, w, minsize, self.factor)[skip_levels:]:
            size = (int(h * scale + 1), int(w * scale + 1))
            r0, c0 = 0, 0
            if window is None:
                level = sampler.whole(size)
            else:
                spans = _window_cells(sampler.level_edges(size), window)
                if spans is None:
                    continue
                (r0, r1), (c0, c1) = spans
                level = sampler.whole(size, slice(r0, r1), slice(c0, c1))
            offsets, probs = self.pnet(level)
            score = probs[0, 1]
            ys, xs = torch.nonzero(score >= self.thresholds[0], as_tuple=True)
            if not len(ys):
                continue
            # P-net's output cell k sees level pixels 2k .. 2k + 11: a window starting at an even
            # level pixel gives the whole level's cells (r0 / 2, c0 / 2) onwards
            cell = torch.stack([xs + c0 // 2, ys + r0 // 2], dim=1).to(offsets.dtype)
            top_left = ((2 * cell + 1) / scale).floor()
            bottom_right = ((2 * cell + 12) / scale).floor()
            boxes = torch.cat([top_left, bottom_right, score[ys, xs, None], offsets[0, :, ys, xs].T], dim=1)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not found:
            return torch.zeros(0, 9)
        boxes = torch.cat(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        moved = torch.stack(
            [
                boxes[:, 0] + boxes[:, 5] * bw,
                boxes[:, 1] + boxes[:, 6] * bh,
                boxes[:, 2] + boxes[:, 7] * bw,
                boxes[:, 3] + boxes[:, 8] * bh,
                boxes[:, 4],
            ],
            dim=1,
        )
        return _square(moved)

    def _crops(self, sampler: AreaSampler, boxes: torch.Tensor, size: int):
        y0, y1, x0, x1, valid = _crop_spans(boxes, sampler.width, sampler.height)
        valid &= sampler.inside(y0, y1, x0, x1)
        keep = torch.from_numpy(valid)
        return sampler.regions(y0[valid], y1[valid], x0[valid], x1[valid], (size, size)), boxes[keep]

    @torch.inference_mode()
    def detect(
        self,
        image: np.ndarray,
        minsize: float = 20.0,
        skip_levels: int = 0,
        window: tuple[int, int, int, int] | None = None,
        origin: tuple[int, int] = (0, 0),
        frame_size: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one RGB uint8 image: ``boxes (K, 5)`` (x1, y1, x2, y2, probability) and
        ``landmarks (K, 5, 2)`` (left eye, right eye, nose, mouth left, mouth right).

        ``window`` = (x0, y0, x1, y1): search only the pyramid cells inside it, which are the whole
        image's cells, so a face well inside gets the whole search's box. ``image`` may be the
        part of a frame of ``frame_size`` = (height, width) whose top-left pixel is ``origin`` =
        (x, y) (holding ``window`` and a margin for the R- and O-net crops: boxes whose crops
        leave it are dropped); coordinates, in and out, are then the frame's."""
        empty = np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        sampler = AreaSampler(image, origin, frame_size)
        boxes = self._proposals(sampler, minsize, skip_levels, window)
        if not len(boxes):
            return empty
        crops, boxes = self._crops(sampler, boxes, 24)
        if not len(boxes):
            return empty
        offsets, probs = self.rnet(crops)
        passed = probs[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], dim=1)
        offsets = offsets[passed]
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_refine(boxes[keep], offsets[keep]))
        if not len(boxes):
            return empty
        crops, boxes = self._crops(sampler, boxes, 48)
        if not len(boxes):
            return empty
        offsets, marks, probs = self.onet(crops)
        passed = probs[:, 1] > self.thresholds[2]
        boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], dim=1)
        offsets, marks = offsets[passed], marks[passed]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack(
            [bw * marks[:, :5] + boxes[:, 0:1] - 1, bh * marks[:, 5:] + boxes[:, 1:2] - 1], dim=2
        )
        boxes = _refine(boxes, offsets)
        keep = _nms_min(boxes[:, :4].numpy(), boxes[:, 4].numpy(), 0.7)
        return boxes[keep].numpy().astype(np.float32), points[keep].numpy().astype(np.float32)
