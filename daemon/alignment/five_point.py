"""Five-point similarity alignment onto the standard 112x112 face template.

The template is the one ArcFace-style embedders (both MobileFaceNets here) were trained on:
eye centres, nose tip and mouth corners of an average face in a 112x112 crop.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 112
TEMPLATE = np.array([
    [38.2946, 51.6963],  # left eye (as seen in the image)
    [73.5318, 51.5014],  # right eye
    [56.0252, 71.7366],  # nose tip
    [41.5493, 92.3655],  # left mouth corner
    [70.7299, 92.2041],  # right mouth corner
], dtype=np.float64)


def similarity_transforms(landmarks: np.ndarray, template: np.ndarray = TEMPLATE) -> np.ndarray:
    """Least-squares similarity transforms (rotation, uniform scale, shift) from each face's
    landmarks onto the template, as (K, 2, 3) matrices for cv2.warpAffine.

    Umeyama's closed form, solved for all faces at once.  Unlike cv2.estimateAffinePartial2D it
    is exact least squares over all five points (no RANSAC subset), which matters for alignment
    quality: four of the five points decide the crop's scale.
    """
    src = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    dst = np.asarray(template, np.float64)
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = dst.mean(axis=0)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    cov = np.einsum("ki,nkj->nij", dst_c, src_c) / 5.0  # (K, 2, 2)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((src.shape[0], 2))
    d[np.linalg.det(u) * np.linalg.det(vt) < 0, 1] = -1.0  # no reflections
    rot = u @ (d[:, :, None] * vt)
    var = (src_c ** 2).sum(axis=(1, 2)) / 5.0
    scale = (sig * d).sum(axis=1) / np.maximum(var, 1e-12)
    a = rot * scale[:, None, None]
    t = dst_mean[None, :] - np.einsum("nij,nj->ni", a, src_mean[:, 0, :])
    return np.concatenate([a, t[:, :, None]], axis=2)


def align_faces(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Aligned RGB crops (K, 112, 112, 3) uint8 for each face's five landmarks (K, 5, 2)."""
    mats = similarity_transforms(landmarks)
    out = np.empty((mats.shape[0], CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for i, m in enumerate(mats):
        # one C call per face: warpAffine has no batched form, and it is ~20 us per crop
        out[i] = cv2.warpAffine(image, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out
