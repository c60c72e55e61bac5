"""The embedded default data set: procedural faces drawn with OpenCV, offline and deterministic.

Each identity has its own geometry (face outline, ears, eye spacing and size, brows, nose, mouth, hair style)
and colours (skin, hair, iris); each image has its own pose (roll, shift, scale, a little yaw), expression
(smile, open mouth, raised brows, eye openness), lighting (directional gradient and gain), background, blur and
noise. Pose jitter is small (a few degrees of roll, a few percent of shift and scale), as in the aligned faces FR
pipelines train on. Like real faces, each identity also has fine skin detail (a texture and a few moles or freckles) that moves
with the face: identity is not only in the low frequencies that frequency-domain masking removes. Identity i looks the same whatever the number of identities generated: every identity and every image
draws from its own seeded generator. These are NOT real faces; anything measured on them says so
(`synthetic_data: true` in the manifest).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.errors import InputError
from pipelines.data.face_sources import FaceCollection, SourceFile
from pipelines.data.prepare import PrepareConfig, prepare

GENERATOR_VERSION = 2  # bump when a change alters the pixels: manifests then tell old data sets from new
_SUPERSAMPLE = 4  # shapes are drawn this many times larger, then area-reduced: smooth edges at small sizes
_AA = cv2.LINE_AA

_HAIR_COLOURS = np.array(
    [[28, 24, 22], [62, 42, 30], [105, 72, 45], [196, 165, 110], [150, 72, 38], [165, 160, 155]], dtype=np.float64
)
_IRIS_COLOURS = np.array([[70, 45, 25], [40, 28, 20], [70, 110, 160], [80, 120, 70], [110, 115, 120]], dtype=np.float64)
_LIGHT_SKIN, _DARK_SKIN = np.array([240, 205, 180.0]), np.array([88, 58, 42.0])


@dataclass(frozen=True)
class Identity:
    """What makes one synthetic person recognisable; lengths are fractions of the image side."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    face_half_width: float
    face_half_height: float
    squareness: float  # superellipse exponent of the outline: 2 is an ellipse, higher is squarer
    chin_taper: float
    ear_size: float
    hair_style: int  # 0 short, 1 long, 2 receding, 3 side fringe
    hairline: float
    hair_volume: float
    eye_height: float
    eye_half_spacing: float
    eye_width: float
    eye_aspect: float
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    brow_slant: float
    nose_length: float
    nose_width: float
    mouth_gap: float
    mouth_width: float
    lip_thickness: float
    moustache: bool
    skin_detail: float  # contrast of the identity's skin texture
    marks: tuple[tuple[float, float, float, float], ...]  # moles and freckles: (x, y, radius, darkness)


@dataclass(frozen=True)
class Shot:
    """What changes from one image of a person to the next."""

    roll_degrees: float
    shift: tuple[float, float]
    scale: float
    yaw: float
    smile: float
    mouth_open: float
    brow_raise: float
    eye_openness: float
    light_angle: float
    light_strength: float
    gain: float
    background: np.ndarray
    blur_sigma: float
    noise_sigma: float


def make_identity(seed: int, index: int) -> Identity:
    rng = np.random.default_rng([seed, 0, index])
    u = rng.uniform
    tone = u(0, 1)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + u(-15, 15, 3)
    return Identity(
        skin=np.clip((1 - tone) * _LIGHT_SKIN + tone * _DARK_SKIN + u(-10, 10, 3), 0, 255),
        hair=np.clip(hair, 0, 255),
        iris=_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))],
        face_half_width=u(0.245, 0.3),
        face_half_height=u(0.33, 0.39),
        squareness=u(2.0, 3.0),
        chin_taper=u(0.0, 0.35),
        ear_size=u(0.04, 0.06),
        hair_style=int(rng.integers(4)),
        hairline=u(0.08, 0.16),
        hair_volume=u(0.015, 0.06),
        eye_height=u(0.44, 0.49),
        eye_half_spacing=u(0.095, 0.13),
        eye_width=u(0.05, 0.068),
        eye_aspect=u(0.42, 0.6),
        brow_gap=u(0.035, 0.055),
        brow_thickness=u(0.008, 0.02),
        brow_arch=u(0.0, 0.022),
        brow_slant=u(-0.012, 0.012),
        nose_length=u(0.1, 0.15),
        nose_width=u(0.03, 0.05),
        mouth_gap=u(0.05, 0.075),
        mouth_width=u(0.065, 0.105),
        lip_thickness=u(0.008, 0.018),
        moustache=bool(rng.random() < 0.2),
        skin_detail=u(0.03, 0.07),
        marks=tuple(
            (0.5 + u(-0.2, 0.2), 0.54 + u(-0.12, 0.22), u(0.006, 0.016), u(0.45, 0.8))
            for _ in range(rng.integers(3, 9))
        ),
    )


def make_shot(seed: int, identity_index: int, image_index: int) -> Shot:
    rng = np.random.default_rng([seed, 1, identity_index, image_index])
    u = rng.uniform
    return Shot(
        roll_degrees=u(-3, 3),
        shift=(u(-0.012, 0.012), u(-0.012, 0.012)),
        scale=u(0.97, 1.03),
        yaw=u(-0.15, 0.15),
        smile=u(-0.3, 1.0),
        mouth_open=u(0, 1) ** 3,
        brow_raise=u(-0.006, 0.014),
        eye_openness=0.15 if rng.random() < 0.05 else u(0.65, 1.1),
        light_angle=u(0, 2 * math.pi),
        light_strength=u(0.0, 0.45),
        gain=u(0.78, 1.15),
        background=u(40, 220) + u(-25, 25, 3),
        blur_sigma=u(0.0, 0.6),
        noise_sigma=u(0.5, 3.0),
    )


class _Canvas:
    """Drawing in fractions of the image side, with the yaw of the shot applied to every feature."""

    def __init__(self, side: int, yaw: float) -> None:
        self.side = side
        self.yaw = yaw
        self.rgb = np.zeros((side, side, 3), dtype=np.uint8)
        self.mask = np.zeros((side, side), dtype=np.uint8)

    def px(self, x: float, y: float, depth: float = 0.0) -> tuple[int, int]:
        """A point in pixels; `depth` is how far the feature stands out of the face (turning moves it more)."""
        x = 0.5 + (x - 0.5) * (1 - 0.2 * abs(self.yaw)) + self.yaw * depth
        return round(x * self.side), round(y * self.side)

    def poly(self, points, colour, depth: float = 0.0) -> None:
        pts = np.array([self.px(x, y, depth) for x, y in points], dtype=np.int32)
        cv2.fillPoly(self.rgb, [pts], tuple(float(c) for c in colour), _AA)
        cv2.fillPoly(self.mask, [pts], 255, _AA)

    def line(self, points, colour, thickness: float, depth: float = 0.0) -> None:
        pts = np.array([self.px(x, y, depth) for x, y in points], dtype=np.int32)
        cv2.polylines(self.rgb, [pts], False, tuple(float(c) for c in colour), max(1, int(thickness * self.side)), _AA)

    def ellipse(self, centre, axes, colour, depth: float = 0.0, angle: float = 0.0) -> None:
        squeeze = 1 - 0.2 * abs(self.yaw)
        size = (max(1, int(axes[0] * squeeze * self.side)), max(1, int(axes[1] * self.side)))
        at = self.px(centre[0], centre[1], depth)
        cv2.ellipse(self.rgb, at, size, angle, 0, 360, tuple(float(c) for c in colour), -1, _AA)
        cv2.ellipse(self.mask, at, size, angle, 0, 360, 255, -1, _AA)


def _outline(person: Identity, grow: float = 0.0, steps: int = 72) -> list[tuple[float, float]]:
    """The face outline: a superellipse whose lower half narrows towards the chin."""
    points = []
    for t in np.linspace(0, 2 * math.pi, steps, endpoint=False):
        c, s = math.cos(t), math.sin(t)
        x = math.copysign(abs(c) ** (2 / person.squareness), c) * (person.face_half_width + grow)
        y = math.copysign(abs(s) ** (2 / person.squareness), s) * (person.face_half_height + grow)
        if y > 0:
            x *= 1 - person.chin_taper * (y / person.face_half_height) ** 2
        points.append((0.5 + x, 0.54 + y))
    return points


def _curve(x0: float, x1: float, y: float, bend: float, steps: int = 12) -> list[tuple[float, float]]:
    """A parabola from x0 to x1 at height y whose middle is `bend` higher (negative: lower)."""
    return [(x, y - bend * (1 - ((2 * (x - x0) / (x1 - x0)) - 1) ** 2)) for x in np.linspace(x0, x1, steps)]


def _draw_hair_back(canvas: _Canvas, person: Identity) -> None:
    if person.hair_style == 1:
        w, h = person.face_half_width + person.hair_volume + 0.02, person.face_half_height + 0.06
        canvas.ellipse((0.5, 0.56), (w, h), person.hair)
        canvas.poly([(0.5 - w, 0.56), (0.5 + w, 0.56), (0.5 + w * 0.95, 0.95), (0.5 - w * 0.95, 0.95)], person.hair)


def _draw_head(canvas: _Canvas, person: Identity) -> None:
    skin = person.skin
    neck_w = person.face_half_width * 0.55
    canvas.poly(
        [(0.5 - neck_w, 0.7), (0.5 + neck_w, 0.7), (0.5 + neck_w * 1.1, 1.0), (0.5 - neck_w * 1.1, 1.0)], skin * 0.8
    )
    for side in (-1, 1):
        canvas.ellipse(
            (0.5 + side * person.face_half_width * 0.97, person.eye_height + 0.03),
            (person.ear_size * 0.55, person.ear_size),
            skin * 0.9,
            depth=-0.02,
        )
    canvas.poly(_outline(person), skin, depth=0.01)


def _draw_hair_top(canvas: _Canvas, person: Identity) -> None:
    """A cap over the crown, down to a hairline that meets the temples; styles move and tilt the hairline."""
    temple_y = person.eye_height - (0.09 if person.hair_style == 2 else 0.03)
    cap = [p for p in _outline(person, grow=person.hair_volume)[36:] if p[1] < temple_y]
    top = 0.54 - person.face_half_height
    hairline_y = top + (person.hairline * 0.35 if person.hair_style == 2 else person.hairline)
    tilt = 0.12 if person.hair_style == 3 else 0.0
    hairline = [
        (x, y + tilt * (x - 0.5) * (y - hairline_y) / max(temple_y - hairline_y, 1e-3) - tilt * 0.02)
        for x, y in _curve(cap[-1][0], cap[0][0], temple_y, temple_y - hairline_y)
    ]
    canvas.poly(cap + hairline, person.hair, depth=0.01)


def _draw_marks(canvas: _Canvas, person: Identity) -> None:
    for x, y, radius, darkness in person.marks:
        canvas.ellipse((x, y), (radius, radius), person.skin * darkness, depth=0.02)


@functools.lru_cache(maxsize=256)
def _skin_texture(seed: int, identity_index: int, size: int) -> np.ndarray:
    """The identity's own fine texture: smooth noise of unit spread, fixed in face coordinates (size x size)."""
    base = np.random.default_rng([seed, 4, identity_index]).normal(0.0, 1.0, (40, 40)).astype(np.float32)
    texture = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    return (texture - texture.mean()) / (texture.std() + 1e-6)


def _draw_eyes_and_brows(canvas: _Canvas, person: Identity, shot: Shot) -> None:
    brow_colour = person.hair * 0.7
    for side in (-1, 1):
        cx, cy = 0.5 + side * person.eye_half_spacing, person.eye_height
        near = 1 - 0.35 * max(0.0, side * shot.yaw)  # the eye on the far side of a turned head looks narrower
        half_w, half_h = person.eye_width * near, person.eye_width * person.eye_aspect * shot.eye_openness * 0.5
        canvas.ellipse((cx, cy), (half_w + 0.006, half_h + 0.006), person.skin * 0.82, depth=0.04)
        canvas.ellipse((cx, cy), (half_w, max(half_h, 0.002)), (235, 235, 230), depth=0.04)
        if shot.eye_openness > 0.3:
            iris_r = min(person.eye_width * 0.45, half_h * 1.1)
            canvas.ellipse((cx, cy), (iris_r, iris_r), person.iris, depth=0.045)
            canvas.ellipse((cx, cy), (iris_r * 0.45, iris_r * 0.45), (15, 12, 10), depth=0.045)
        by = cy - person.brow_gap - shot.brow_raise
        x0, x1 = cx - person.eye_width * 1.15, cx + person.eye_width * 1.15
        brow = [
            (x, y + side * person.brow_slant * (x - cx) / person.eye_width)
            for x, y in _curve(x0, x1, by, person.brow_arch)
        ]
        canvas.line(brow, brow_colour, person.brow_thickness, depth=0.045)


def _draw_nose_and_mouth(canvas: _Canvas, person: Identity, shot: Shot) -> None:
    skin = person.skin
    tip_y = person.eye_height + person.nose_length
    canvas.line([(0.5 + 0.01, person.eye_height + 0.02), (0.5 + 0.012, tip_y - 0.015)], skin * 0.8, 0.006, depth=0.08)
    canvas.ellipse((0.5, tip_y - 0.008), (person.nose_width * 0.55, 0.02), skin * 1.04, depth=0.1)
    for side in (-1, 1):
        canvas.ellipse(
            (0.5 + side * person.nose_width * 0.45, tip_y), (person.nose_width * 0.22, 0.009), skin * 0.45, depth=0.09
        )
    my, hw = tip_y + person.mouth_gap, person.mouth_width
    curve = 0.018 * shot.smile
    opening = 0.022 * shot.mouth_open
    lips = np.clip(skin * np.array([0.85, 0.55, 0.55]) + np.array([25, 0, 0]), 0, 255)
    upper_top = _curve(0.5 - hw, 0.5 + hw, my - person.lip_thickness, -curve * 0.6 - 0.004)
    middle_top = _curve(0.5 - hw, 0.5 + hw, my, -curve)
    middle_bottom = _curve(0.5 - hw, 0.5 + hw, my + opening, -curve - opening * 0.3)
    lower_bottom = _curve(0.5 - hw, 0.5 + hw, my + opening + person.lip_thickness * 1.2, -curve - 0.006)
    if opening > 0.003:
        canvas.poly(middle_top + middle_bottom[::-1], (40, 15, 15), depth=0.06)
    canvas.poly(upper_top + middle_top[::-1], lips, depth=0.06)
    canvas.poly(middle_bottom + lower_bottom[::-1], lips * 1.08, depth=0.06)
    if person.moustache:
        canvas.poly(
            _curve(0.5 - hw * 1.1, 0.5 + hw * 1.1, my - person.lip_thickness - 0.006, 0.01)
            + _curve(0.5 - hw * 1.1, 0.5 + hw * 1.1, my - person.lip_thickness - 0.024, 0.012)[::-1],
            person.hair * 0.8,
            depth=0.065,
        )


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres as fractions of the side, (ys, xs), each size x size float32."""
    ys, xs = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    return ys, xs


def _shading(size: int, person: Identity) -> np.ndarray:
    """Darker towards the rim of the head, so it reads as round rather than a flat cut-out."""
    ys, xs = _grid(size)
    radius = np.hypot((xs - 0.5) / person.face_half_width, (ys - 0.54) / person.face_half_height)
    return 1 - 0.3 * np.clip(radius, 0, 1.3) ** 3


def render_face(seed: int, identity_index: int, image_index: int, size: int) -> np.ndarray:
    """One synthetic face, size x size x 3 uint8 RGB; a pure function of its arguments.

    Shapes are drawn supersampled and area-reduced (smooth edges); pose, light and compositing then run at the
    output size, which keeps a 64 x 64 face at a few milliseconds.
    """
    person, shot = make_identity(seed, identity_index), make_shot(seed, identity_index, image_index)
    canvas = _Canvas(size * _SUPERSAMPLE, shot.yaw)
    _draw_hair_back(canvas, person)
    _draw_head(canvas, person)
    _draw_hair_top(canvas, person)
    _draw_marks(canvas, person)
    _draw_eyes_and_brows(canvas, person, shot)
    _draw_nose_and_mouth(canvas, person, shot)
    face: np.ndarray = cv2.resize(canvas.rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha: np.ndarray = cv2.resize(canvas.mask, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    face *= (_shading(size, person) * (1 + person.skin_detail * _skin_texture(seed, identity_index, size)))[..., None]
    pose = cv2.getRotationMatrix2D((size / 2, size * 0.54), shot.roll_degrees, shot.scale)
    pose[:, 2] += np.array(shot.shift) * size
    # Replicating the border keeps the neck running off the bottom edge when the head moves up.
    face = cv2.warpAffine(face, pose, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, pose, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ys, xs = _grid(size)
    ramp = ((xs - 0.5) * math.cos(shot.light_angle) + (ys - 0.5) * math.sin(shot.light_angle)) * 2
    background = shot.background.astype(np.float32) * (0.85 + 0.3 * ys[..., None])
    image: np.ndarray = face * alpha[..., None] + background * (1 - alpha[..., None])
    image *= (shot.gain * (1 + shot.light_strength * ramp))[..., None]
    if shot.blur_sigma > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), shot.blur_sigma)
    noise = np.random.default_rng([seed, 3, identity_index, image_index]).normal(0, shot.noise_sigma, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


def identity_name(index: int) -> str:
    return f"id_{index:04d}"


def image_path(identity_index: int, image_index: int) -> str:
    """Laid out as a folder-per-identity tree would be, so exported images prepare to the same rows."""
    return f"{identity_name(identity_index)}/img_{image_index:04d}.png"


def render_png(seed: int, identity_index: int, image_index: int, size: int) -> bytes:
    rgb = render_face(seed, identity_index, image_index, size)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return encoded.tobytes()


def synthetic_collection(identities: int, images_per_identity: int, size: int, seed: int) -> FaceCollection:
    """The synthetic faces as a FaceCollection of PNG files, rendered lazily, for the one `prepare` path."""
    files = [
        SourceFile(image_path(i, j), identity_name(i), functools.partial(render_png, seed, i, j, size))
        for i in range(identities)
        for j in range(images_per_identity)
    ]
    origin = {
        "kind": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "identities": identities,
        "images_per_identity": images_per_identity,
        "size": size,
        "seed": seed,
    }
    return FaceCollection(files=sorted(files, key=lambda f: f.relative_path), origin=origin, synthetic=True)


def generate_faces(
    identities: int, images_per_identity: int, size: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(images N x size x size x 3 uint8 RGB, labels N int64), identity-major: for tests and small experiments."""
    images = np.stack([render_face(seed, i, j, size) for i in range(identities) for j in range(images_per_identity)])
    labels = np.repeat(np.arange(identities, dtype=np.int64), images_per_identity)
    return images, labels


def contact_sheet(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Tile N x H x W x 3 images into one RGB image, `columns` per row, on a white background."""
    rows = -(-len(images) // columns)
    height, width = images.shape[1:3]
    sheet = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, 3), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        top, left = gap + (index // columns) * (height + gap), gap + (index % columns) * (width + gap)
        sheet[top : top + height, left : left + width] = image
    return sheet


def save_contact_sheet(
    path: str | Path, identities: int = 8, images_per_identity: int = 6, size: int = 64, seed: int = 0
) -> Path:
    """A PNG with one row per identity: what the synthetic data set looks like (docs/synthetic_faces.png)."""
    images, _ = generate_faces(identities, images_per_identity, size, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(contact_sheet(images, images_per_identity), cv2.COLOR_RGB2BGR))
    return path


def prepare_synthetic(
    out: str | Path,
    identities: int,
    images_per_identity: int,
    options: PrepareConfig,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """`hybridmask synth`: render the faces as PNG files in memory and run them through `prepare`.

    The generator draws at `options.size` and uses `options.seed` for both faces and split; faces are drawn at
    the output size, so --min-size never rejects them.
    """
    if identities < 1:
        raise InputError(f"--identities {identities} is below 1; give the number of synthetic people, e.g. 40")
    if images_per_identity < max(2, options.min_images):
        raise InputError(
            f"--images-per-identity {images_per_identity} is below {max(2, options.min_images)}; "
            "verification needs at least two images of each person"
        )
    options = dataclasses.replace(options, min_size=min(options.min_size, options.size))
    options.validate()
    collection = synthetic_collection(identities, images_per_identity, options.size, options.seed)
    return prepare(collection, out, options, workers=workers, progress=progress)
