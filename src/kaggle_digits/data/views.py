"""Test-time views: the copies of an image averaged with it at prediction time.

Which kinds suit is a prior about the images (a spec's `[augment] views`, or `--tta-views`):
kinds joined by "+", e.g. "shifts", "rotations", "flips+shifts". The views come in a fixed
order, most useful first, and a run takes the first `--tta` of them. Pure Python: the config
counts them, training.py makes them."""

VIEW_KINDS = ("flips", "shifts", "rotations")

# The image moved by whole pixels (down, right), nearest first; small, short-trained nets
# gain the most (see docs/measurements.md#test-time-views)
TTA_SHIFTS = (
    (1, 0), (-1, 0), (0, 1), (0, -1),
    (2, 0), (-2, 0), (0, 2), (0, -2),
    (1, 1), (1, -1), (-1, 1), (-1, -1),
)  # fmt: skip

# Or the image turned by a few degrees (anticlockwise, clockwise), nearest first, and
# resampled (bilinear) as every training image is by the augmentation, where the test images
# are not (see docs/measurements.md#turned-test-time-views)
TTA_ROTATIONS = (4.0, -4.0, 8.0, -8.0, 12.0, -12.0)  # degrees

# A view is a tuple of steps, applied in order: ("shift", (rows, columns)),
# ("rotate", degrees) or ("flip", "horizontal" | "vertical" | "both")
Step = tuple[str, object]
View = tuple[Step, ...]


def view_problem(views: str, flip_horizontal: bool, flip_vertical: bool, flip_hint: str) -> str:
    """Why `views` cannot be used (unknown kinds; flips the training never makes, with
    `flip_hint`, how to allow them); '' if it can."""
    kinds = views.split("+")
    if any(kind not in VIEW_KINDS for kind in kinds) or len(set(kinds)) != len(kinds):
        return f"'{views}' is not kinds of view joined by + ({', '.join(VIEW_KINDS)})"
    if "flips" in kinds and not (flip_horizontal or flip_vertical):
        return f"'{views}' mirrors the test images, but the training flips none ({flip_hint})"
    return ""


def views_of(views: str, flip_horizontal: bool, flip_vertical: bool) -> tuple[View, ...]:
    """Every view of the kinds in `views`, in the order a run takes them: the image mirrored
    (each flip the training allows), then each move (shifts, turns; both interleaved), each
    followed by its mirrored copies."""
    kinds = views.split("+")
    flips = allowed_flips(flip_horizontal, flip_vertical) if "flips" in kinds else ()
    shifts = [("shift", shift) for shift in TTA_SHIFTS] if "shifts" in kinds else []
    turns = [("rotate", degrees) for degrees in TTA_ROTATIONS] if "rotations" in kinds else []
    moves = interleaved(shifts, turns)
    found: list[View] = [(flip,) for flip in flips]
    for move in moves:
        found += [(move,), *((move, flip) for flip in flips)]
    return tuple(found)


def allowed_flips(flip_horizontal: bool, flip_vertical: bool) -> tuple[Step, ...]:
    """The mirrorings that keep an image's class, as the training's flips say."""
    if flip_horizontal and flip_vertical:
        return (("flip", "horizontal"), ("flip", "vertical"), ("flip", "both"))
    if flip_horizontal:
        return (("flip", "horizontal"),)
    return (("flip", "vertical"),) if flip_vertical else ()


def interleaved(first: list, second: list) -> list:
    """first[0], second[0], first[1], second[1], ..., then the longer one's rest."""
    merged = [item for pair in zip(first, second, strict=False) for item in pair]
    shorter = min(len(first), len(second))
    return merged + first[shorter:] + second[shorter:]
