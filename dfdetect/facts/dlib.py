"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) and its chips:
``get_face_chip(img, shape, size=150, padding=0.25)``, each plane then ``(pixel - mean) / 256``."""

from __future__ import annotations

DLIB_INPUT_SIZE = 150  # the chip's side in pixels, and the net's input
DLIB_CHIP_PADDING = 0.25
DLIB_MIN_INPUT_SIZE = 103  # below, the last stride-2 convolution sees less than 3x3
DLIB_EMBEDDING_DIM = 128
DLIB_DISTANCE_THRESHOLD = 0.6
FACE_MEANS = (122.782, 117.001, 104.298)
# residual stages, input to output: (channels, stride) per block
FACE_BLOCKS: tuple[tuple[int, int], ...] = (
    ((32, 1),) * 3
    + ((64, 2),)
    + ((64, 1),) * 3
    + ((128, 2),)
    + ((128, 1),) * 2
    + ((256, 2),)
    + ((256, 1),) * 2
    + ((256, 2),)
)
