"""Phone-photo-like pictures of a handwritten digit, made from a 28x28 MNIST-style digit:
ink of a chosen colour and weight on paper, with ruled lines, a shadow edge, light falling
off towards a corner, a small digit in a large frame, a tilt, sensor noise and JPEG.

Used by the tests, and by `benchmarks/photos.py` to measure `predict` on photo-like digits
that no model trained on.
"""

import io

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("ruled", "shadow", "gradient", "small", "blue", "marker", "pencil", "tilted")

PAPER = (236, 234, 226)
BLACK_INK, BLUE_INK, PENCIL = (25, 25, 35), (30, 50, 150), (105, 105, 110)
RULE_BLUE, MARGIN_RED = (150, 185, 225), (225, 100, 100)


def digit_alpha(digit: np.ndarray, height: int, thickness: int = 0) -> Image.Image:
    """The digit's ink coverage (L image), `height` pixels tall, strokes thickened by
    `thickness` pixels (a marker)."""
    big = Image.fromarray(digit.squeeze()).resize((height, height), Image.Resampling.BICUBIC)
    coverage = np.clip((np.asarray(big, dtype=np.float32) - 70) / 110, 0, 1)
    alpha = Image.fromarray((coverage * 255).astype(np.uint8))
    if thickness:
        alpha = alpha.filter(ImageFilter.MaxFilter(2 * thickness + 1))
    return alpha.filter(ImageFilter.GaussianBlur(0.8))


def photo(digit: np.ndarray, kind: str, seed: int = 0) -> Image.Image:
    """An RGB photo of `digit` (28x28 white-on-black uint8) of the given kind."""
    rng = np.random.default_rng(seed)
    size, digit_height, ink, thickness = (900, 700), int(rng.integers(220, 320)), BLACK_INK, 0
    if kind == "small":
        size, digit_height = (3000, 2250), int(rng.integers(140, 200))
    if kind == "blue" or kind == "ruled":
        ink = BLUE_INK
    if kind == "pencil":
        ink = PENCIL
    if kind == "marker":
        thickness = digit_height // 45
    width, height = size
    page = Image.new("RGB", size, PAPER)
    if kind == "ruled":
        _rule(page, rng)
    alpha = digit_alpha(digit, digit_height, thickness)
    if kind == "tilted":
        alpha = alpha.rotate(float(rng.choice([-15, 15])), expand=True, fillcolor=0)
    margin = digit_height // 2
    where = (
        int(rng.integers(margin, width - margin - alpha.width)),
        int(rng.integers(margin // 2, height - margin // 2 - alpha.height)),
    )
    if kind == "small":  # far from the centre
        where = (int(width * 0.75), int(height * 0.15))
    page.paste(Image.new("RGB", alpha.size, ink), where, alpha)
    pixels = np.asarray(page, dtype=np.float32)
    pixels *= _light(kind, height, width, where, alpha.size, rng)[..., None]
    pixels += rng.normal(0, 4, pixels.shape)  # sensor noise and paper texture
    page = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=85)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _rule(page: Image.Image, rng: np.random.Generator) -> None:
    """Blue ruled lines every ~32 px and a red margin line, slightly tilted with the page."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(page)
    width, height = page.size
    tilt = float(rng.uniform(-0.08, 0.08))  # slope of the lines (about ±5°)
    spacing = int(rng.integers(28, 38))
    for y in range(-height, 2 * height, spacing):
        draw.line([(0, y), (width, y + tilt * width)], fill=RULE_BLUE, width=3)
    x = int(rng.integers(60, 120))
    draw.line([(x, 0), (x - tilt * height, height)], fill=MARGIN_RED, width=3)


def _light(kind, height, width, where, digit_size, rng) -> np.ndarray:
    """Illumination: 1 in full light. A shadow edge through the digit's middle, or light
    falling off towards a corner."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "shadow":
        centre = (where[1] + digit_size[1] * 0.5, where[0] + digit_size[0] * 0.55)
        angle = float(rng.uniform(0.3, 1.2))
        side = (rows - centre[0]) * np.cos(angle) - (columns - centre[1]) * np.sin(angle)
        return 0.5 + 0.5 / (1 + np.exp(-side / 3))  # a sharp edge, half the light beyond it
    if kind == "gradient":
        distance = np.hypot(rows / height, columns / width) / np.sqrt(2)
        return 1.0 - 0.6 * distance
    return np.ones((height, width), dtype=np.float32)
