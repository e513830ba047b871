"""Find the handwritten digit in a photo the way a person would, with scikit-image.

A phone photo of a digit on a notebook page is not a scan: the light falls off towards a
corner, a shadow edge crosses the page, blue ruled lines and a red margin line run through
it, and the digit may be small and anywhere. The road from photo to ink:

1. brightness = the largest of R, G, B: light-coloured lines and margins are nearly as
   bright as paper in it, while ink of any colour (blue, black, pencil) stays dark;
2. the paper's own brightness, estimated locally by a grey closing (a max then a min filter)
   wider than any stroke: it follows shadows and light fall-off, sharp shadow edges
   included (a closing keeps a dark area wider than its window, edge and all), but not
   the strokes;
3. ink = how much darker than its local paper a pixel is (a ratio, so a stroke in shadow
   counts as much as one in full light);
4. long straight lines (ruled lines, margins, printed at any tilt up to ~20°) found by a
   Hough transform and taken out where their ink is faint;
5. ink pixels by hysteresis (strong seeds grown through fainter connected ink), then the
   digit: the connected ink with the most mass, together with nearby pieces (a broken
   stroke, the bar of a 5), not paper texture and specks.

The result is the digit's ink, cropped from the full-resolution photo, which is then made
MNIST-like the way MNIST itself was made (ink_to_frame): white ink on black, cropped to the
ink, scaled to fit a box of 20/28 of the image size keeping the aspect ratio, and placed in
the frame so that the centre of mass sits at the centre. The file itself is read by
read_image (EXIF orientation applied, transparency as white paper).
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage import filters, measure, morphology, transform

from kaggle_digits.base.errors import UserError

WORK_SIDE = 512  # the longer side of the image the digit is searched in
PAPER_WINDOW = 0.2  # the closing's width, as a share of WORK_SIDE: wider than any stroke
FAINT, STRONG = 0.15, 0.35  # ink contrast of the hysteresis threshold (0 paper, 1 black)
DARK_PAPER = 0.3  # a border darker than this is dark paper with light ink (an MNIST image)
LINE_LENGTH = 0.3  # a ruled line spans at least this share of the image's side
LINE_ANGLES = 20  # degrees either side of horizontal and vertical
NEARBY = 0.35  # pieces this close (a share of the digit's size) belong to the digit
MIN_PIECE = 0.03  # ... if they hold at least this share of its ink
MIN_DIGIT = 0.02  # a digit is at least this share of the image's longer side


@dataclass(frozen=True)
class FoundDigit:
    ink: np.ndarray  # float32, 0 (paper) .. 1, the digit's ink cropped at full resolution
    box: tuple[int, int, int, int]  # top, left, bottom, right in the photo's pixels


def find_digit(photo: np.ndarray, source: str = "image") -> FoundDigit:
    """The digit's ink in a photo (H x W grayscale or H x W x 3 RGB, 0-255)."""
    brightness = _brightness(photo)
    scale = WORK_SIDE / max(brightness.shape)
    small = transform.rescale(brightness, scale, anti_aliasing=scale < 1, preserve_range=True)
    small_paper = paper_brightness(small)
    small_ink = _ink(small, small_paper)
    small_ink[_ruled_lines(small_ink)] = 0  # no line here is faint ink of the digit
    mask = _digit_mask(small_ink, source)

    rows, columns = np.nonzero(mask)
    margin = 2  # working pixels, for the anti-aliased edge of the strokes
    top, left = max(rows.min() - margin, 0), max(columns.min() - margin, 0)
    bottom = min(rows.max() + 1 + margin, mask.shape[0])
    right = min(columns.max() + 1 + margin, mask.shape[1])
    box = tuple(int(round(v / scale)) for v in (top, left, bottom, right))
    top_px, left_px, bottom_px, right_px = box
    bottom_px, right_px = min(bottom_px, brightness.shape[0]), min(right_px, brightness.shape[1])
    crop = brightness[top_px:bottom_px, left_px:right_px]

    # the ink again at full resolution, within the (slightly grown) mask of the digit
    size = crop.shape
    paper = transform.resize(small_paper[top:bottom, left:right], size, preserve_range=True)
    keep = morphology.dilation(mask[top:bottom, left:right], morphology.disk(1))
    keep = transform.resize(keep.astype(float), size, order=1) > 0.1
    ink = _ink(crop, paper) * keep
    return FoundDigit(ink.astype(np.float32), (top_px, left_px, bottom_px, right_px))


def _brightness(photo: np.ndarray) -> np.ndarray:
    """0 (dark) .. 1 (light), with paper light: light ink on dark paper (an MNIST image, a
    screenshot) is inverted. Paper is judged by the border, where a digit rarely is; only
    quite dark paper counts, since a shadow may cover half a light page."""
    photo = np.asarray(photo, dtype=np.float32)
    brightness = (photo.max(axis=2) if photo.ndim == 3 else photo) / 255
    border = np.concatenate([brightness[0], brightness[-1], brightness[:, 0], brightness[:, -1]])
    if np.median(border) < DARK_PAPER:
        brightness = 1 - brightness
    return brightness


def paper_brightness(brightness: np.ndarray) -> np.ndarray:
    """The local brightness of the paper: a closing removes dark details narrower than its
    window (strokes, lines), and keeps wider ones (a shadow) with their edges."""
    width = max(3, int(PAPER_WINDOW * max(brightness.shape)) | 1)
    footprint = morphology.footprint_rectangle((width, width), decomposition="sequence")
    paper = morphology.closing(brightness, footprint)
    return np.maximum(paper, 1e-3)


def _ink(brightness: np.ndarray, paper: np.ndarray) -> np.ndarray:
    return np.clip(1 - brightness / paper, 0, 1)


def _ruled_lines(ink: np.ndarray) -> np.ndarray:
    """Pixels of long straight lines near horizontal or vertical, where the ink is faint."""
    faint = ink > FAINT
    side = max(ink.shape)
    near = np.deg2rad(np.arange(-LINE_ANGLES, LINE_ANGLES + 1, 2))
    angles = np.concatenate([near, near + np.pi / 2])
    angles = np.where(angles > np.pi / 2, angles - np.pi, angles)
    segments = transform.probabilistic_hough_line(
        faint,
        threshold=int(0.1 * side),
        line_length=int(LINE_LENGTH * side),
        line_gap=max(3, side // 50),  # noise and JPEG break thin lines into dashes
        theta=angles,
        rng=0,
    )
    lines = np.zeros(ink.shape, dtype=bool)
    for (x0, y0), (x1, y1) in segments:
        steps = max(abs(x1 - x0), abs(y1 - y0)) + 1
        ys = np.rint(np.linspace(y0, y1, steps)).astype(int)
        xs = np.rint(np.linspace(x0, x1, steps)).astype(int)
        lines[ys, xs] = True
    lines = morphology.dilation(lines, morphology.disk(2))  # the lines' own width
    return lines & (ink < STRONG)


def _digit_mask(ink: np.ndarray, source: str) -> np.ndarray:
    """The digit's pixels: the connected ink with most mass, away from the image's edge
    where possible, and the pieces near it."""
    strong = max(STRONG, 0.5 * float(np.percentile(ink, 99.9)))
    mask = filters.apply_hysteresis_threshold(ink, FAINT, strong)
    labels = measure.label(mask, connectivity=2)
    pieces = measure.regionprops(labels, intensity_image=ink)
    if not pieces:
        raise UserError(f"{source}: no digit found (no ink darker than the paper around it)")
    height, width = ink.shape

    def touches_edge(piece) -> bool:
        top, left, bottom, right = piece.bbox
        return top == 0 or left == 0 or bottom == height or right == width

    def mass(piece) -> float:
        return float(piece.image_intensity.sum()) * (0.2 if touches_edge(piece) else 1.0)

    digit = max(pieces, key=mass)
    top, left, bottom, right = digit.bbox
    reach = NEARBY * max(bottom - top, right - left)
    keep = np.zeros_like(mask)
    for piece in pieces:
        p_top, p_left, p_bottom, p_right = piece.bbox
        near = (
            p_bottom > top - reach
            and p_top < bottom + reach
            and p_right > left - reach
            and p_left < right + reach
        )
        piece_of_digit = near and not touches_edge(piece)  # not a shadow's corner, a page edge
        if piece is digit or (piece_of_digit and mass(piece) >= MIN_PIECE * mass(digit)):
            keep[labels == piece.label] = True
    if max(bottom - top, right - left) < MIN_DIGIT * max(height, width):
        raise UserError(f"{source}: no digit found (only specks of ink)")
    return keep


# --- a photo file read, and its ink made an image of the competition's shape ------------

DIGIT_BOX_FRACTION = 20 / 28  # MNIST scales the digit's longer side to 20 of 28 pixels


def read_image(path: Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """A PNG/JPEG/... file (or an open one, named `name` in messages) as an RGB uint8 array,
    upright as the phone showed it (EXIF orientation applied), transparent pixels as white
    paper."""
    source = str(path) if name is None else name
    try:
        with warnings.catch_warnings():
            # past Pillow's pixel limit it only warns, up to twice it; either is refused here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
    except FileNotFoundError:
        raise UserError(f"{source}: no such image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"{source}: too large: at most {Image.MAX_IMAGE_PIXELS:,} pixels are read (a phone's "
            "photo has about 12,000,000); scale it down"
        ) from None
    except UnidentifiedImageError:
        raise UserError(f"{source}: cannot read the image (not an image file)") from None
    except OSError as error:
        raise UserError(f"{source}: cannot read the image ({error})") from None
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def mnist_style(
    photo: np.ndarray, image_shape: tuple[int, int, int], source: str = "image"
) -> np.ndarray:
    """A photo or image of a digit (grayscale or RGB, any size, either polarity) -> an
    MNIST-style uint8 image of the competition's shape (28x28x1 for MNIST)."""
    return ink_to_frame(find_digit(photo, source).ink, image_shape)


def ink_to_frame(ink: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """A crop of ink (0 paper .. 1) -> scaled into MNIST's box, centred by centre of mass."""
    frame_height, frame_width, channels = image_shape
    rows, columns = np.nonzero(ink > 0)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    ink = np.clip(ink / max(float(np.percentile(ink[ink > 0], 90)), 1e-6), 0, 1) * 255

    height, width = ink.shape
    scale = DIGIT_BOX_FRACTION * min(frame_height, frame_width) / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(
        Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    )
    digit = np.clip(digit, 0, 255)

    frame = np.zeros((frame_height, frame_width), dtype=np.float32)
    centre_row, centre_column = centre_of_mass(digit)
    top = int(round(frame_height / 2 - centre_row))
    left = int(round(frame_width / 2 - centre_column))
    top = min(max(top, 0), frame_height - digit.shape[0])
    left = min(max(left, 0), frame_width - digit.shape[1])
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.repeat(np.rint(frame).astype(np.uint8)[..., None], channels, axis=-1)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    rows = np.arange(image.shape[0]) + 0.5
    columns = np.arange(image.shape[1]) + 0.5
    return float((image.sum(axis=1) * rows).sum() / total), float(
        (image.sum(axis=0) * columns).sum() / total
    )
