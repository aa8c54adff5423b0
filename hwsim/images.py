"""Synthetic gate-camera pictures of containers, rendered with OpenCV, with the truth known.

A picture is drawn in two steps: the container's end wall or doors as a flat panel (paint,
corrugation, dirt, the ISO 6346 marking in one of the three layouts of DOMAIN.md section 2),
then that panel seen by a gate camera (perspective, wide-angle distortion, glare, shadow,
occlusion, blur, noise). Everything is drawn from one seed, so a picture can be made again.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from stdnum import iso6346

from hwsim.image_effects import Degradation, degrade, lens_distort

_LOGGER = logging.getLogger(__name__)

WIDTH, HEIGHT = 1920, 1080

LAYOUTS = ("horizontal", "horizontal_multiline", "vertical")
VIEWS = ("door_end_from_above", "front_end_wall_from_above", "end_wall_oblique_side_camera")

SIZE_TYPES = ("22G1", "42G1", "45G1", "45R1", "L5G1", "22R1", "22U1", "42U1", "22T1", "25G1")

# Container paints as RGB, with the marking colour each usually carries.
PAINTS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "blue": ((32, 72, 140), (240, 240, 240)),
    "light_blue": ((80, 145, 190), (245, 245, 245)),
    "red": ((150, 42, 32), (240, 240, 235)),
    "rust": ((125, 58, 38), (235, 235, 230)),
    "green": ((40, 108, 62), (240, 240, 240)),
    "grey": ((135, 138, 140), (250, 250, 250)),
    "dark_grey": ((62, 63, 68), (235, 235, 235)),
    "white": ((212, 214, 208), (25, 25, 30)),
    "orange": ((214, 112, 34), (250, 250, 250)),
    "yellow": ((214, 176, 44), (20, 20, 20)),
    "magenta": ((168, 40, 108), (245, 245, 245)),
    "teal": ((24, 108, 118), (240, 240, 240)),
}

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
HERSHEY_FONTS = {
    "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey_triplex": cv2.FONT_HERSHEY_TRIPLEX,
}
TTF_FONTS = {
    "dejavu_sans_bold": "DejaVuSans-Bold.ttf",
    "dejavu_condensed_bold": "DejaVuSansCondensed-Bold.ttf",
    "dejavu_condensed": "DejaVuSansCondensed.ttf",
}

# Which layouts each view shows, with weights like the real portal photos.
_LAYOUT_WEIGHTS = {
    "door_end_from_above": {"horizontal": 0.75, "horizontal_multiline": 0.25},
    "front_end_wall_from_above": {"horizontal": 0.4, "vertical": 0.6},
    "end_wall_oblique_side_camera": {
        "vertical": 0.6, "horizontal_multiline": 0.3, "horizontal": 0.1,
    },
}


def available_fonts() -> tuple[str, ...]:
    """Font names usable here: OpenCV's own fonts always, DejaVu TTFs when installed."""
    ttf = tuple(name for name, file in TTF_FONTS.items() if (FONT_DIR / file).is_file())
    return tuple(HERSHEY_FONTS) + ttf


def random_container_number(rng: np.random.Generator) -> str:
    """A valid ISO 6346 freight container number with a random owner code and serial."""
    owner = "".join(chr(ord("A") + int(i)) for i in rng.integers(0, 26, size=3))
    serial = "".join(str(int(d)) for d in rng.integers(0, 10, size=6))
    body = f"{owner}U{serial}"
    return body + iso6346.calc_check_digit(body)


@dataclass(frozen=True)
class RenderSpec:
    """Everything that decides one synthetic picture; `seed` drives the remaining randomness."""

    container_number: str
    size_type: str
    layout: str
    view: str
    paint: str
    font: str
    seed: int
    camera: str = "AH"
    difficulty: float = 0.6
    boxed_check_digit: bool = True
    show_size_type: bool = True
    legible: bool = True  # False: the number is painted over (a patch of fresh paint)

    def __post_init__(self) -> None:
        if not iso6346.is_valid(self.container_number):
            raise ValueError(f"not a valid ISO 6346 number: {self.container_number!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}")
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}")
        if self.paint not in PAINTS:
            raise ValueError(f"unknown paint {self.paint!r}")
        if self.font not in HERSHEY_FONTS and self.font not in TTF_FONTS:
            raise ValueError(f"unknown font {self.font!r}")


@dataclass(frozen=True)
class SyntheticImage:
    """A rendered picture (BGR, 1920x1080) and what is truly on it."""

    image: np.ndarray = field(repr=False)
    spec: RenderSpec
    region: tuple[int, int, int, int]  # x, y, w, h of the container number in the picture
    effects: tuple[str, ...]

    @property
    def container_number(self) -> str:
        return self.spec.container_number


def random_spec(
    seed: int,
    *,
    container_number: str | None = None,
    size_type: str | None = None,
    view: str | None = None,
    layout: str | None = None,
    camera: str | None = None,
    difficulty: float = 0.6,
    legible: bool = True,
) -> RenderSpec:
    """A spec drawn from `seed`; the given fields are kept, the others chosen at random."""
    rng = np.random.default_rng(seed)
    number = container_number or random_container_number(rng)
    chosen_view = view or str(rng.choice(VIEWS, p=[0.4, 0.15, 0.45]))
    if layout is None:
        weights = _LAYOUT_WEIGHTS[chosen_view]
        names = list(weights)
        layout = str(rng.choice(names, p=np.array(list(weights.values())) / sum(weights.values())))
    if camera is None:
        camera = {"door_end_from_above": "AS", "front_end_wall_from_above": "AH"}.get(
            chosen_view, str(rng.choice(["LF", "RF", "LB"]))
        )
    return RenderSpec(
        container_number=number,
        size_type=size_type or str(rng.choice(SIZE_TYPES)),
        layout=layout,
        view=chosen_view,
        paint=str(rng.choice(list(PAINTS))),
        font=str(rng.choice(available_fonts())),
        seed=int(rng.integers(0, 2**31)),
        camera=camera,
        difficulty=difficulty,
        boxed_check_digit=bool(rng.random() < 0.85),
        show_size_type=bool(rng.random() < 0.85),
        legible=legible,
    )


# --- glyphs ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _glyph(font: str, char: str, height: int, weight: int, condense: float) -> np.ndarray:
    """The ink of one character as a uint8 mask whose capital height is `height` pixels,
    narrowed by `condense` (container stencils are narrower than book type). A tail below
    the baseline (Q) makes the mask taller; every mask's top is the capitals' top."""
    capital = _ink(font, "H", height, weight)
    narrow = 1.0
    if char == "0" and font in HERSHEY_FONTS:
        # OpenCV 5 draws these fonts' zero slashed, which stencils never are: a narrowed O
        # is what a container's zero looks like (and why O and 0 are confused)
        char, narrow = "O", 0.8
    ink = _ink(font, char, height, weight)
    cx, cy, cw, ch = cv2.boundingRect(capital)
    x, y, w, h = cv2.boundingRect(ink)
    if w == 0 or h == 0:
        raise ValueError(f"font {font} has no ink for {char!r}")
    top, bottom = min(cy, y), max(cy + ch, y + h)
    factor = height / ch
    condense *= narrow
    size = (max(2, round(w * factor * condense)), max(2, round((bottom - top) * factor)))
    return cv2.resize(ink[top:bottom, x : x + w], size, interpolation=cv2.INTER_AREA)


def _ink(font: str, char: str, height: int, weight: int) -> np.ndarray:
    """`char` drawn at about `height` pixels on a blank canvas, always at the same origin."""
    canvas = np.zeros((height * 3, height * 3), np.uint8)
    origin = (height // 2, height * 2)
    if font in HERSHEY_FONTS:
        face = HERSHEY_FONTS[font]
        thickness = max(1, round(height * (0.08 + 0.03 * weight)))
        scale = cv2.getFontScaleFromHeight(face, height, thickness)
        cv2.putText(canvas, char, origin, face, scale, 255, thickness, cv2.LINE_AA)
    else:
        cv2.putText(canvas, char, origin, 255, _ttf(font), int(height * 1.35), 400 + 200 * weight)
    return canvas


@functools.lru_cache(maxsize=16)
def _ttf(font: str) -> cv2.FontFace:
    return cv2.FontFace(str(FONT_DIR / TTF_FONTS[font]))


def _stamp(panel: np.ndarray, mask: np.ndarray, x: int, y: int, colour: np.ndarray) -> None:
    """Paint `colour` through `mask` at (x, y), clipped to the panel."""
    h, w = mask.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, panel.shape[1]), min(y + h, panel.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    alpha = mask[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)[..., None] / 255.0
    area = panel[y0:y1, x0:x1].astype(np.float32)
    panel[y0:y1, x0:x1] = (area * (1 - alpha) + colour * alpha).astype(np.uint8)


@dataclass
class _Pen:
    """Writes characters of one font, height and colour on a panel, remembering their boxes."""

    panel: np.ndarray
    font: str
    height: int
    weight: int
    pitch: float
    condense: float
    colour: np.ndarray
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    def glyph(self, char: str) -> np.ndarray:
        return _glyph(self.font, char, self.height, self.weight, self.condense)

    def char(self, char: str, x: int, y: int, boxed: bool = False) -> tuple[int, int, int, int]:
        """Draw `char` centred in its cell whose top-left is (x, y); return the ink box."""
        mask = self.glyph(char)
        cell = self.advance(char)
        left = x + max(0, (cell - mask.shape[1]) // 2)
        _stamp(self.panel, mask, left, y, self.colour)
        box = (left, y, mask.shape[1], mask.shape[0])
        if boxed:
            pad = max(3, self.height // 7)
            thick = max(2, self.height // 14)
            colour = tuple(int(c) for c in self.colour)
            cv2.rectangle(
                self.panel, (left - pad, y - pad),
                (left + mask.shape[1] + pad, y + self.height + pad), colour, thick, cv2.LINE_AA,
            )
            box = (left - pad, y - pad, mask.shape[1] + 2 * pad, self.height + 2 * pad)
        return box

    def advance(self, char: str) -> int:
        """Cell width of `char`: the pitch, widened for broad glyphs so that none touch."""
        glyph_width = self.glyph(char).shape[1]
        return max(round(self.height * self.pitch), glyph_width + self.height // 7)

    def line(self, text: str, x: int, y: int, box_last: bool = False) -> int:
        """Draw `text` left to right from (x, y); spaces are half a cell; return the end x."""
        half = round(self.height * self.pitch) // 2
        for index, char in enumerate(text):
            if char == " ":
                x += half
                continue
            boxed = box_last and index == len(text) - 1
            if boxed:
                x += half // 2
            self.boxes.append(self.char(char, x, y, boxed))
            x += self.advance(char) + (half // 2 if boxed else 0)
        return x

    def column(self, text: str, x: int, y: int, gap_after: int = -1, box_last: bool = False) -> int:
        """Draw `text` top to bottom, upright characters stacked; return the end y."""
        step = round(self.height * (1.18 + 0.1 * self.weight))
        for index, char in enumerate(text):
            boxed = box_last and index == len(text) - 1
            if boxed:
                y += step // 4
            self.boxes.append(self.char(char, x, y, boxed))
            y += step + (step // 4 if boxed else 0)
            if index == gap_after:
                y += step // 3
        return y


# --- the panel ---------------------------------------------------------------------------------


def _panel(spec: RenderSpec, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...]]:
    """The container end as seen square-on, with its marking; returns it and the number's box."""
    door = spec.view == "door_end_from_above"
    width, height = (1500, 1250) if door else (1300, 1350)
    paint_rgb, ink_rgb = PAINTS[spec.paint]
    paint = np.array(paint_rgb[::-1], np.float32) * rng.uniform(0.85, 1.1)
    panel = np.empty((height, width, 3), np.float32)
    panel[:] = paint

    # corrugation: a periodic light/dark profile across (end walls) or down (doors)
    period = rng.uniform(60, 110)
    depth = rng.uniform(0.03, 0.09)
    axis = np.arange(height if door else width, dtype=np.float32)
    profile = 1 + depth * np.clip(1.5 * np.sin(2 * np.pi * axis / period), -1, 1)
    panel *= profile[:, None, None] if door else profile[None, :, None]
    blotches = cv2.resize(rng.normal(1, 0.05, (12, 12)).astype(np.float32), (width, height))
    panel *= blotches[..., None]
    _frame_rails(panel, paint, door)
    panel_u8 = np.clip(panel, 0, 255).astype(np.uint8)
    _dirt(panel_u8, rng, spec.difficulty)

    ink = np.array(ink_rgb[::-1], np.float32) * rng.uniform(0.85, 1.0)
    low, high = (0.85, 1.0) if "condensed" in spec.font else (0.62, 0.85)
    pen = _Pen(
        panel_u8, spec.font, height=int(rng.integers(56, 90)), weight=int(rng.integers(0, 3)),
        pitch=float(rng.uniform(0.55, 0.75)), condense=round(float(rng.uniform(low, high)), 2),
        colour=ink,
    )
    box = _write_marking(pen, spec, rng, width, height)
    if not spec.legible:
        # its own generator, so the rest of the picture is the same as the legible one
        _paint_over(panel_u8, box, paint, np.random.default_rng(spec.seed + 1))
    _distractors(panel_u8, spec, rng, ink, box)
    if door:
        _locking_bars(panel_u8, rng, pen.boxes, spec.difficulty)
    return panel_u8, box


def _frame_rails(panel: np.ndarray, paint: np.ndarray, door: bool) -> None:
    """Corner posts and top/bottom rails, a little darker than the wall."""
    h, w = panel.shape[:2]
    post = 70
    panel[:, :post] = paint * 0.7
    panel[:, w - post :] = paint * 0.7
    panel[:60] = paint * 0.75
    panel[h - 70 :] = paint * 0.65
    if door:
        panel[:, w // 2 - 6 : w // 2 + 6] = paint * 0.45


def _dirt(panel: np.ndarray, rng: np.random.Generator, difficulty: float) -> None:
    """Rust streaks and grime patches; more of them on harder pictures."""
    h, w = panel.shape[:2]
    overlay = panel.copy()
    for _ in range(int(rng.integers(3, int(8 + 25 * difficulty)))):
        x = int(rng.integers(0, w))
        y = int(rng.integers(0, h))
        colour = tuple(int(c) for c in rng.integers(20, 90, size=3) * np.array([0.5, 0.7, 1.0]))
        if rng.random() < 0.5:
            length = int(rng.integers(40, 400))
            cv2.line(overlay, (x, y), (x + int(rng.integers(-10, 10)), y + length), colour,
                     int(rng.integers(2, 9)), cv2.LINE_AA)
        else:
            axes = (int(rng.integers(10, 90)), int(rng.integers(6, 50)))
            cv2.ellipse(overlay, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    overlay = cv2.GaussianBlur(overlay, (0, 0), 3)
    cv2.addWeighted(overlay, 0.55, panel, 0.45, 0, dst=panel)


def _write_marking(
    pen: _Pen, spec: RenderSpec, rng: np.random.Generator, width: int, height: int
) -> tuple[int, int, int, int]:
    """Draw owner code, serial, check digit (and size/type) in the spec's layout."""
    number = spec.container_number
    owner, serial, check = number[:4], number[4:10], number[10]
    boxed = spec.boxed_check_digit
    cell = round(pen.height * pen.pitch)
    gap = pen.height // 3

    if spec.layout == "horizontal":
        text_w = sum(pen.advance(c) for c in number) + cell
        x = _marking_x(spec, rng, width, text_w, margin=120)
        y = int(rng.integers(110, height // 2))
        serial_x = pen.line(owner + " ", x, y)
        pen.line(serial + " " + check, serial_x, y, box_last=boxed)
        number_boxes = list(pen.boxes)
        if spec.show_size_type:
            pen.line(spec.size_type, serial_x, y + pen.height + gap * 2)
    elif spec.layout == "horizontal_multiline":
        text_w = sum(pen.advance(c) for c in serial) + cell * 2
        x = _marking_x(spec, rng, width, text_w, margin=150)
        y = int(rng.integers(110, height // 2))
        pen.line(owner, x, y)
        pen.line(serial + " " + check, x, y + pen.height + gap, box_last=boxed)
        number_boxes = list(pen.boxes)
        if spec.show_size_type:
            pen.line(spec.size_type, x, y + 2 * (pen.height + gap))
    else:
        # the column of 11 upright characters must fit the wall's height
        factor = 1.18 + 0.1 * pen.weight
        pen.height = min(pen.height, int((height - 200) / (12.3 * factor)))
        cell = round(pen.height * pen.pitch)
        step = round(pen.height * factor)
        column_h = step * 12
        x = int(rng.integers(200, width - 200 - 3 * cell))
        y = int(rng.integers(90, max(91, height - 80 - column_h)))
        pen.column(owner + serial + check, x, y, gap_after=3, box_last=boxed)
        number_boxes = list(pen.boxes)
        if spec.show_size_type:
            pen.column(spec.size_type, x + cell * 2 + int(rng.integers(0, cell)), y)

    xs = [b[0] for b in number_boxes] + [b[0] + b[2] for b in number_boxes]
    ys = [b[1] for b in number_boxes] + [b[1] + b[3] for b in number_boxes]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def _marking_x(
    spec: RenderSpec, rng: np.random.Generator, width: int, text_w: int, margin: int
) -> int:
    """Left edge of a marking line; on doors it stays on one door, clear of the seam."""
    if spec.view == "door_end_from_above":
        right_door = (width // 2 + 50, width - margin - text_w)
        left_door = (margin, width // 2 - 50 - text_w)
        doors = [span for span in (right_door, left_door) if span[1] > span[0]]
        if doors:
            low, high = doors[0] if len(doors) == 1 or rng.random() < 0.7 else doors[1]
            return int(rng.integers(low, high + 1))
    return int(rng.integers(margin, max(margin + 1, width - margin - text_w)))


def _paint_over(
    panel: np.ndarray, box: tuple[int, int, int, int], paint: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Cover the number with a patch of slightly different paint, as after a change of owner."""
    x, y, w, h = box
    pad = int(rng.integers(15, 40))
    shade = tuple(float(c) for c in np.clip(paint * rng.uniform(0.8, 1.15), 0, 255))
    cv2.rectangle(panel, (x - pad, y - pad), (x + w + pad, y + h + pad), shade, -1)


_DISTRACTOR_LINES = (
    "MAX.GROSS 30.480 KGS", "TARE 2.210 KGS", "NET 28.270 KGS", "CU.CAP. 33.2 CU.M.",
    "67.200 LBS", "4.870 LBS", "MADE IN CHINA", "CSC SAFETY APPROVAL",
)


def _distractors(
    panel: np.ndarray, spec: RenderSpec, rng: np.random.Generator, ink: np.ndarray,
    number_box: tuple[int, int, int, int],
) -> None:
    """Other printing a container carries: weights table, a logo, a height sticker."""
    h, w = panel.shape[:2]
    bx, by, bw, bh = number_box
    colour = tuple(int(c) for c in ink)
    if spec.view == "door_end_from_above" and rng.random() < 0.8:
        y = by + bh + 160
        for text in rng.choice(_DISTRACTOR_LINES, size=int(rng.integers(2, 5)), replace=False):
            if y > h - 100:
                break
            cv2.putText(panel, str(text), (bx, y), cv2.FONT_HERSHEY_SIMPLEX, 1.1, colour, 2,
                        cv2.LINE_AA)
            y += 62
    if rng.random() < 0.6:
        # a shipping line's logo: a light plate with a word in a strong colour
        lx = int(rng.integers(90, w - 420))
        ly = int(rng.integers(h // 2, h - 200))
        if not (lx + 360 > bx and lx < bx + bw and ly + 120 > by and ly < by + bh):
            cv2.rectangle(panel, (lx, ly), (lx + 340, ly + 110), (225, 232, 235), -1)
            word = "".join(chr(ord("A") + int(i)) for i in rng.integers(0, 26, size=3))
            cv2.putText(panel, word, (lx + 120, ly + 82), cv2.FONT_HERSHEY_DUPLEX, 2.4,
                        (30, 30, 180), 6, cv2.LINE_AA)
    if rng.random() < 0.5:
        # a height sticker beside the marking, clear of it
        sx, sy = bx + bw + int(rng.integers(60, 160)), by + bh // 2
        if sx > w - 160:
            sx, sy = bx, by + bh + int(rng.integers(140, 220))
        if sy > h - 160:
            return
        cv2.rectangle(panel, (sx, sy), (sx + 80, sy + 90), (20, 190, 230), -1)
        cv2.putText(panel, "2.9m", (sx + 6, sy + 38), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                    (20, 20, 20), 2, cv2.LINE_AA)


def _locking_bars(
    panel: np.ndarray, rng: np.random.Generator, glyphs: list[tuple[int, int, int, int]],
    difficulty: float,
) -> None:
    """The four vertical locking rods of a door end. Markings are painted between the rods,
    so a rod is moved into the nearest gap between characters, except on some hard pictures
    where it crosses one (a rod in front of a character, as a camera sometimes sees it)."""
    h, w = panel.shape[:2]
    positions = [int(w * f + rng.uniform(-25, 25)) for f in (0.12, 0.3, 0.62, 0.82)]
    covered = np.zeros(w, bool)
    for gx, _gy, gw, _gh in glyphs:
        covered[max(0, gx - 34) : min(w, gx + gw + 34)] = True  # rod, bracket, margin
    free = np.flatnonzero(~covered)
    for index, x in enumerate(positions):
        if covered[min(max(x, 0), w - 1)] and rng.random() > 0.3 * difficulty and free.size:
            positions[index] = int(free[np.argmin(np.abs(free - x))])
    for x in positions:
        grey = int(rng.integers(150, 215))
        cv2.line(panel, (x, 40), (x, h - 40), (grey, grey, grey), 18, cv2.LINE_AA)
        cv2.line(panel, (x - 5, 40), (x - 5, h - 40), (grey + 35,) * 3, 4, cv2.LINE_AA)
        for y in (120, h - 180):
            cv2.rectangle(panel, (x - 22, y), (x + 22, y + 60), (grey - 40,) * 3, -1)


# --- the camera --------------------------------------------------------------------------------


def _background(view: str, rng: np.random.Generator) -> np.ndarray:
    """What surrounds the container: paving seen from above, or sky and yard seen sideways.

    Drawn at a quarter of the size and scaled up: it is only surroundings, and it is cheap."""
    small_w, small_h = WIDTH // 4, HEIGHT // 4
    base = np.empty((small_h, small_w, 3), np.float32)
    if "from_above" in view:
        base[:] = rng.uniform(95, 140)
        base[::10] *= 0.8  # paving joints every ~40 pixels at full size
        base[:, ::21] *= 0.8
    else:
        sky = np.linspace(235, 205, small_h // 3, dtype=np.float32)
        base[: small_h // 3] = sky[:, None, None]
        base[small_h // 3 :] = rng.uniform(150, 195)
        for _ in range(int(rng.integers(1, 4))):
            x = int(rng.integers(0, small_w - 75))
            colour = rng.uniform(80, 200, size=3)
            base[small_h // 6 : small_h // 2, x : x + int(rng.integers(38, 125))] = colour
    base += rng.standard_normal((small_h, small_w, 1), dtype=np.float32) * 6
    small = np.clip(base, 0, 255).astype(np.uint8)
    background = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.7:
        # a yellow/black kerb block or pole like the lane furniture in real portal pictures
        x = int(rng.integers(WIDTH // 2, WIDTH - 200))
        y = int(rng.integers(HEIGHT // 2, HEIGHT - 250))
        for i in range(4):
            stripe = (20, 190, 230) if i % 2 == 0 else (25, 25, 25)
            cv2.rectangle(background, (x, y + 50 * i), (x + 160, y + 50 * (i + 1)), stripe, -1)
    return background


def _destination(view: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Where the panel's corners land in the picture (top-left, top-right, bottom-right, -left)."""
    jitter = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    if view == "end_wall_oblique_side_camera":
        near_left = rng.random() < 0.5
        top, bottom = -60 + jitter(40), HEIGHT + 60 + jitter(40)
        near_x, far_x = -80 + jitter(60), WIDTH * rng.uniform(0.68, 0.85)
        shrink = rng.uniform(0.06, 0.16) * HEIGHT
        quad = [
            (near_x, top), (far_x, top + shrink), (far_x, bottom - shrink), (near_x, bottom),
        ]
        if not near_left:
            quad = [(WIDTH - x, y) for x, y in (quad[1], quad[0], quad[3], quad[2])]
    else:
        scale = rng.uniform(0.8, 1.0) * HEIGHT * 1.05 / h
        cw, ch = w * scale, h * scale
        cx = WIDTH / 2 + jitter(WIDTH * 0.12)
        top = jitter(60) - 30
        tilt = rng.uniform(0.0, 0.12) * cw
        quad = [
            (cx - cw / 2 - tilt, top), (cx + cw / 2 + tilt, top),
            (cx + cw / 2, top + ch), (cx - cw / 2, top + ch),
        ]
    points = np.array(quad, np.float32)
    return points + rng.normal(0, 10, points.shape).astype(np.float32)


def render(spec: RenderSpec) -> SyntheticImage:
    """Draw the picture `spec` describes; the same spec always gives the same pixels."""
    rng = np.random.default_rng(spec.seed)
    panel, box = _panel(spec, rng)
    h, w = panel.shape[:2]
    source = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float32)
    destination = _destination(spec.view, rng, w, h)
    homography = cv2.getPerspectiveTransform(source, destination)

    picture = _background(spec.view, rng)
    warped = cv2.warpPerspective(panel, homography, (WIDTH, HEIGHT), flags=cv2.INTER_AREA)
    inside = cv2.warpPerspective(np.full((h, w), 255, np.uint8), homography, (WIDTH, HEIGHT))
    np.copyto(picture, warped, where=(inside > 127)[..., None])

    bx, by, bw, bh = box
    corners = np.array([[(bx, by), (bx + bw, by), (bx + bw, by + bh), (bx, by + bh)]], np.float32)
    region_points = cv2.perspectiveTransform(corners, homography)[0]
    effects: list[str] = []
    if spec.view == "end_wall_oblique_side_camera":
        strength = float(rng.uniform(0.08, 0.25))
        picture, region_points = lens_distort(picture, region_points, strength)
        effects.append(f"barrel:{strength:.2f}")

    rx, ry, rw, rh = cv2.boundingRect(region_points.astype(np.float32))
    region = (rx, ry, rw, rh)
    degradation = Degradation.draw(rng, spec.difficulty)
    picture, applied = degrade(picture, degradation, region, rng)
    effects.extend(applied)
    x, y, rw, rh = region
    x0, y0 = max(0, x), max(0, y)
    clipped = (x0, y0, min(WIDTH, x + rw) - x0, min(HEIGHT, y + rh) - y0)
    return SyntheticImage(image=picture, spec=spec, region=clipped, effects=tuple(effects))


def render_empty(view: str, seed: int, chassis: bool = True) -> np.ndarray:
    """A camera's picture with no container in view: the lane, maybe an empty chassis."""
    rng = np.random.default_rng(seed)
    picture = _background(view, rng)
    if chassis:
        y = int(HEIGHT * rng.uniform(0.45, 0.65))
        cv2.rectangle(picture, (200, y), (WIDTH - 200, y + 70), (40, 40, 45), -1)
        for x in (320, WIDTH // 2, WIDTH - 380):
            cv2.rectangle(picture, (x, y - 20), (x + 60, y + 90), (30, 30, 35), -1)
    return picture


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buffer.tobytes())


# --- real photos from a folder -------------------------------------------------------------------

LABEL_COLUMNS = ("file", "container_number", "camera", "code_layout", "view", "capture")


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    container_number: str
    camera: str
    code_layout: str
    view: str
    capture: str


class PhotoFolder:
    """Real gate photos in a folder with a labels.csv, picked by container number and camera."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        labels = self.directory / "labels.csv"
        if not labels.is_file():
            raise FileNotFoundError(f"{labels} does not exist")
        self.skipped: list[str] = []
        photos: list[LabelledPhoto] = []
        with labels.open(newline="") as stream:
            reader = csv.DictReader(stream)
            missing = set(LABEL_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{labels}: missing columns {', '.join(sorted(missing))}")
            for row in reader:
                path = self.directory / row["file"]
                if not path.is_file() or not iso6346.is_valid(row["container_number"]):
                    self.skipped.append(row["file"])
                    continue
                photos.append(
                    LabelledPhoto(
                        path, row["container_number"], row["camera"], row["code_layout"],
                        row["view"], row["capture"],
                    )
                )
        if self.skipped:
            _LOGGER.warning(
                "photo folder %s: %d labelled photos missing or invalid, skipped",
                self.directory, len(self.skipped),
            )
        self.photos: tuple[LabelledPhoto, ...] = tuple(photos)

    def container_numbers(self) -> list[str]:
        return sorted({photo.container_number for photo in self.photos})

    def captures(self) -> dict[str, list[LabelledPhoto]]:
        """The photos grouped by truck pass, as the portal took them."""
        grouped: dict[str, list[LabelledPhoto]] = {}
        for photo in self.photos:
            grouped.setdefault(photo.capture, []).append(photo)
        return grouped

    def pick(
        self, container_number: str, camera: str | None = None, seed: int = 0
    ) -> LabelledPhoto | None:
        """A photo of this container, from this camera if there is one; None if never seen."""
        candidates = [p for p in self.photos if p.container_number == container_number]
        same_camera = [p for p in candidates if p.camera == camera]
        pool: Sequence[LabelledPhoto] = same_camera or candidates
        if not pool:
            return None
        return pool[seed % len(pool)]
