"""The presets, recipes a run starts from, and how a run's config is made of a preset, the
competition spec's priors and the options given; the command that trains a run again."""

import dataclasses
import math

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Priors
from kaggle_digits.options.config import (
    CV_OPTIONS,
    OPTIONS_BY_FIELD,
    PRIOR_FIELDS,
    CVConfig,
    validate,
)


def scaled_learning_rate(learning_rate: float, batch_size: int, new_batch_size: int) -> float:
    """The learning rate for `new_batch_size` that matches `learning_rate` at `batch_size`:
    scaled by the square root of their ratio, as suits Adam (the gradient's noise falls with
    the square root of the batch)."""
    return learning_rate * math.sqrt(new_batch_size / batch_size)


# Each preset is a recipe: nets, epochs or budget, batches, views' count. What suits the
# images (deskewing, turns, flips, the kinds of view) is the competition spec's to say
# (PRIOR_FIELDS). Why each choice, with the runs that measured it: docs/presets.md and
# docs/measurements.md#the-presets-recipe
PRESETS = {
    # the whole cross-validation in under 5 minutes on a 2-core CPU: a small net, and 2 folds
    # that buy it three times the epochs of 4 (docs/measurements.md#two-folds-for-quick)
    "quick": CVConfig(
        preset="quick",
        folds=2,
        members=("tiny-cnn",),
        batch_size=256,
        learning_rate=6e-3,
        tta=4,  # views (docs/measurements.md#test-time-views); the spec says which kinds
        budget_minutes=4.5,
        workers=0,
        precision="auto",
    ),
    # the best ensemble that fits an hour on a 2-core CPU: the plan leaves room for the
    # machine slowing down during the run; hard rows (docs/measurements.md#hard-rows) and
    # turned views (docs/measurements.md#turned-test-time-views)
    "default": CVConfig(
        tta=4,
        budget_minutes=58,
        workers=0,
        select_hard=2.0,
        precision="auto",
    ),
    # one GPU: the best public recipe's 15 strided-cnns (3 a fold), batches four times the
    # default's at a square-root-scaled learning rate, pairs taking turns on the GPU
    # (docs/gpu.md)
    "gpu": CVConfig(
        preset="gpu",
        members=("strided-cnn",) * 3,
        batch_size=128,
        learning_rate=scaled_learning_rate(3e-3, 32, 128),
        tta=4,
        budget_minutes=13,
        workers=0,
        precision="auto",
    ),
}


def preset_config(name: str, priors: Priors | None = None, **overrides) -> CVConfig:
    """A preset for images with these priors (a spec's [augment]; None: the defaults, safe
    for any image), with the given fields replaced; None means 'keep the preset's value'.
    The config's chosen_by says where each value came from.

    Epochs given explicitly replace a preset's time budget: they are the run's length."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    priors = priors or Priors()
    unknown = sorted(set(priors.presets) - set(PRESETS))
    if unknown:
        raise UserError(
            f"{priors.path}: field 'augment.{unknown[0]}' names no preset (presets: "
            f"{', '.join(PRESETS)})"
        )
    given = {key: value for key, value in overrides.items() if value is not None}
    if "epochs" in given and given.get("budget_minutes"):
        raise UserError("give --epochs or --budget, not both")
    if "epochs" in given:
        given.setdefault("budget_minutes", 0.0)
    from_spec = {PRIOR_FIELDS[key]: value for key, value in priors.for_preset(name).items()}
    chosen_by = who_chose(priors, name, given)
    config = dataclasses.replace(PRESETS[name], **(from_spec | given), chosen_by=chosen_by)
    if "tta" not in given:  # the preset's count, of the views these images allow
        config = dataclasses.replace(config, tta=min(config.tta, len(config.views)))
    validate(config)
    return config


def who_chose(priors: Priors, preset: str, given: dict) -> dict[str, str]:
    """Where each option's value comes from: the options given, the spec (what it states, or
    its default for what it leaves out), or else the preset."""
    stated = priors.stated_for(preset)
    chosen_by = dict.fromkeys((option.field for option in CV_OPTIONS), "preset")
    for key, field in PRIOR_FIELDS.items():
        chosen_by[field] = "spec" if key in stated else "spec default"
    return chosen_by | dict.fromkeys(given, "option")


def settled(before: CVConfig, after: CVConfig, source: str = "trial") -> CVConfig:
    """`after`, with the fields that differ from `before` marked as coming from `source`."""
    changed = [
        item.name
        for item in dataclasses.fields(CVConfig)
        if item.compare and getattr(before, item.name) != getattr(after, item.name)
    ]
    chosen_by = {**after.chosen_by, **dict.fromkeys(changed, source)}
    return dataclasses.replace(after, chosen_by=chosen_by)


def resume_overrides(overrides: dict) -> dict:
    """Of the options given with --resume, the execution ones (workers, engine), which apply
    to the resumed run; the run's saved options hold the others, so none may be given."""
    given = [OPTIONS_BY_FIELD[key] for key, value in overrides.items() if value is not None]
    refused = [option.name for option in given if not option.execution]
    if refused:
        raise UserError(f"--resume uses the run's saved options; drop {', '.join(refused)}")
    return {option.field: overrides[option.field] for option in given}


def rerun_command(config: CVConfig) -> str:
    """The cv command that trains exactly this configuration again, with no budget, on the
    same competition (whose spec gives the priors that came from it)."""
    options = [f"--preset {config.preset}"] if config.preset in PRESETS else []
    base = PRESETS.get(config.preset, CVConfig())
    for option in CV_OPTIONS:
        value = getattr(config, option.field)
        # the same spec gives its priors again; a prior given as an option may differ from it
        source = config.chosen_by.get(option.field, "")
        differs = value != getattr(base, option.field) and not source.startswith("spec")
        prior_given = source == "option" and option.field in PRIOR_FIELDS.values()
        if option.rerun and (differs or prior_given or option.field == "epochs"):
            options.append(option.format(value))
    return "kaggle-digits cv " + " ".join(options)


def describe_priors(config: CVConfig) -> list[str]:
    """The images' priors a run takes, a line each, with where each came from."""
    flips = [name for name in ("horizontal", "vertical") if getattr(config, f"flip_{name}")]
    rows = [
        ("deskew", "on" if config.deskew else "off", "deskew"),
        ("turns", up_to(config.rotation_degrees, f"{config.rotation_degrees:g} degrees"),
         "rotation_degrees"),
        ("zooms", up_to(config.zoom, f"{config.zoom:.0%}"), "zoom"),
        ("shifts", up_to(config.shift, f"{config.shift:.0%}"), "shift"),
        ("flips", " and ".join(flips) or "none", "flip_horizontal"),
    ]  # fmt: skip
    if not config.augment:
        rows[1:] = [("augment", "off: no turns, zooms, shifts or flips", "augment")]
    rows.append(("views", f"{config.tta} of {len(config.views)}: {config.tta_views}", "tta_views"))
    sources = dict(config.chosen_by)
    if "option" in (sources.get("flip_horizontal"), sources.get("flip_vertical")):
        sources["flip_horizontal"] = "option"
    if sources.get("tta") == "option" and "tta_views" in sources:
        sources["tta_views"] = f"{sources['tta_views']}, count: option"
    return [f"  {name:8}{value:28}{sources.get(field, '')}" for name, value, field in rows]


def up_to(value: float, text: str) -> str:
    return f"up to {text}" if value else "none"
