"""What a gate camera does to a picture: lens distortion, glare, shadow, occlusion, blur, noise.

Each effect is drawn from a random generator with a probability and a strength that grow with
`difficulty` (0 mild, 1 as bad as a portal gets in sun, rain and dirt).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Degradation:
    """Strengths of the effects applied to one picture; zero means not applied."""

    glare: float
    shadow: float
    occlusion: float
    blur_sigma: float
    motion_px: int
    noise_sigma: float
    gain: float
    contrast: float
    night: bool = False  # infrared flash at night: grey picture, bright centre, dark corners

    @staticmethod
    def draw(rng: np.random.Generator, difficulty: float) -> Degradation:
        d = min(max(difficulty, 0.0), 1.0)

        def maybe(probability: float, low: float, high: float) -> float:
            return float(rng.uniform(low, high)) if rng.random() < probability else 0.0

        return Degradation(
            glare=maybe(0.15 + 0.45 * d, 0.3, 0.5 + 0.45 * d),
            shadow=maybe(0.1 + 0.4 * d, 0.25, 0.35 + 0.3 * d),
            occlusion=maybe(0.05 + 0.3 * d, 0.08, 0.12 + 0.2 * d),
            blur_sigma=maybe(0.2 + 0.5 * d, 0.6, 1.0 + 2.2 * d),
            motion_px=int(maybe(0.1 + 0.3 * d, 3, 6 + 14 * d)),
            noise_sigma=maybe(0.5 + 0.5 * d, 2.0, 4.0 + 12 * d),
            gain=float(rng.uniform(1 - 0.35 * d, 1 + 0.25 * d)),
            contrast=float(rng.uniform(1 - 0.45 * d, 1.0)),
            night=bool(rng.random() < 0.08 + 0.12 * d),
        )


@functools.lru_cache(maxsize=32)
def _barrel_maps(w: int, h: int, strength: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Remap tables of a barrel lens of `strength`, zoomed so the corners stay corners."""
    cx, cy = w / 2, h / 2
    norm = max(cx, cy)
    zoom = 1 + strength * ((cx * cx + cy * cy) / (norm * norm))
    ys, xs = np.indices((h, w), dtype=np.float32)
    dx, dy = (xs - cx) / norm, (ys - cy) / norm
    # the output pixel at radius r shows the undistorted scene at r (1 + k r^2) / zoom
    factor = (1 + strength * (dx * dx + dy * dy)) / zoom
    return (cx + dx * factor * norm), (cy + dy * factor * norm), zoom


def lens_distort(
    picture: np.ndarray, points: np.ndarray, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Barrel distortion of a wide-angle lens; returns the picture and `points` moved with it."""
    h, w = picture.shape[:2]
    strength = round(strength, 2)
    map_x, map_y, zoom = _barrel_maps(w, h, strength)
    distorted = cv2.remap(picture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    cx, cy = w / 2, h / 2
    norm = max(cx, cy)
    moved = []
    for x, y in points:
        # invert r_d (1 + k r_d^2) = r_u zoom by fixed-point steps
        ux, uy = (x - cx) / norm, (y - cy) / norm
        r_u = float(np.hypot(ux, uy))
        r_d = r_u
        for _ in range(30):
            r_d = r_u * zoom / (1 + strength * r_d * r_d)
        scale = r_d / r_u if r_u > 0 else 1.0
        moved.append((cx + ux * scale * norm, cy + uy * scale * norm))
    return distorted, np.array(moved, np.float32)


def degrade(
    picture: np.ndarray,
    degradation: Degradation,
    region: tuple[int, int, int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[str]]:
    """Apply the drawn effects; `region` (the marking) is where glare and occlusion aim."""
    h, w = picture.shape[:2]
    applied: list[str] = []
    image: np.ndarray = picture.astype(np.float32)
    rx, ry, rw, rh = region

    if degradation.shadow:
        # a soft-edged shadow: drawn and blurred at 1/8 size (a wide blur is costly), scaled up
        small: np.ndarray = np.zeros((h // 8, w // 8), np.float32)
        edge = rng.uniform(0.2, 0.8) * w / 8
        slant = rng.uniform(-0.3, 0.3) * w / 8
        corners = [(edge, 0), (w / 8, 0), (w / 8, h / 8), (edge + slant, h / 8)]
        cv2.fillPoly(small, [np.array(corners, np.int32)], 1.0)
        small = cv2.GaussianBlur(small, (0, 0), 3)
        mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        image *= 1 - degradation.shadow * mask[..., None]
        applied.append(f"shadow:{degradation.shadow:.2f}")

    if degradation.night:
        luminance = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small_h, small_w = h // 8, w // 8
        ys, xs = np.ogrid[:small_h, :small_w]
        radius = np.hypot((xs - small_w / 2) / small_w, (ys - small_h / 2) / small_h)
        falloff = cv2.resize((1.15 - 1.1 * radius**2).astype(np.float32), (w, h))
        image = cv2.cvtColor(luminance * falloff, cv2.COLOR_GRAY2BGR)
        applied.append("night")

    if degradation.glare:
        gx = rx + rw * rng.uniform(-0.2, 1.2)
        gy = ry + rh * rng.uniform(-0.2, 1.2)
        sx, sy = rng.uniform(120, 420), rng.uniform(80, 300)
        # the spot is negligible beyond 3 radii: compute it only in that window
        x0, x1 = int(max(0, gx - 3 * sx)), int(min(w, gx + 3 * sx))
        y0, y1 = int(max(0, gy - 3 * sy)), int(min(h, gy + 3 * sy))
        if x0 < x1 and y0 < y1:
            ys, xs = np.ogrid[y0:y1, x0:x1]
            spot = np.exp(-(((xs - gx) / sx) ** 2 + ((ys - gy) / sy) ** 2)).astype(np.float32)
            window = image[y0:y1, x0:x1]
            window += degradation.glare * spot[..., None] * (255 - window)
        applied.append(f"glare:{degradation.glare:.2f}")

    scale = degradation.contrast * degradation.gain
    offset = 128 * (1 - degradation.contrast) * degradation.gain
    image = cv2.addWeighted(image, scale, image, 0, offset)

    if degradation.occlusion:
        # a pole, rod or cable crossing part of the marking
        thickness = max(4, int(degradation.occlusion * min(rw, rh) * 1.2))
        if rw >= rh:
            x = int(rx + rw * rng.uniform(0.1, 0.9))
            start, end = (x, ry - 200), (x + int(rng.integers(-60, 60)), ry + rh + 200)
        else:
            y = int(ry + rh * rng.uniform(0.1, 0.9))
            start, end = (rx - 200, y), (rx + rw + 200, y + int(rng.integers(-60, 60)))
        grey = float(rng.uniform(40, 230))
        cv2.line(image, start, end, (grey, grey, grey), thickness, cv2.LINE_AA)
        applied.append(f"occlusion:{thickness}px")

    if degradation.blur_sigma:
        image = cv2.GaussianBlur(image, (0, 0), degradation.blur_sigma)
        applied.append(f"blur:{degradation.blur_sigma:.1f}")
    if degradation.motion_px:
        kernel = np.zeros((1, degradation.motion_px), np.float32)
        kernel[:] = 1.0 / degradation.motion_px
        image = cv2.filter2D(image, -1, kernel)
        applied.append(f"motion:{degradation.motion_px}px")
    if degradation.noise_sigma:
        noise = rng.standard_normal((h, w, 1), dtype=np.float32) * degradation.noise_sigma
        image = image + noise
        applied.append(f"noise:{degradation.noise_sigma:.1f}")
    return np.clip(image, 0, 255).astype(np.uint8), applied
