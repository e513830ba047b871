"""`cv --budget MINUTES`: how long a run will take, and the epochs (and members) that fit.

The time model: a pair costs its start-up (build, compile, trace), its epochs (training
steps, then scoring the held-out fold) and its predictions; pairs go, in order, to the first
free worker, and workers beyond the cores share them (schedule.makespan); the run ends with
averaging, scoring and plots. The step times come from a short trial of each member
(pairs.time_steps), run as the real pairs will run, so the plan holds for this machine,
backend and number of workers.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Priors
from kaggle_digits.machine.schedule import makespan
from kaggle_digits.options.config import CVConfig
from kaggle_digits.options.presets import PRESETS, preset_config
from kaggle_digits.training.pairs import StepTiming, learning_curve_rows

# Plan to end before the budget: a shared machine's speed wanders by ±30% from one minute to
# the next (see docs/measurements.md#planning-margins)
SAFETY = 0.90
# averaging the members, scoring, plots, writing the run folder, with a margin
FINISH_SECONDS = 10.0
SAVE_SECONDS = 2.0  # a pair's model file and predictions
MIN_EPOCHS_PER_MEMBER = 6  # below this, a second member is worth less than longer training
MAX_EPOCHS = 60  # past this, a longer schedule buys next to nothing
# Where a net's accuracy stops growing with its schedule, in passes: past it, minutes buy more
# from another net a fold than from a longer schedule. strided-cnn x 43 epochs of a third
# scored as x 54 on three folds, x 27 clearly worse (docs/measurements.md#the-flat-tail).
# A net not measured never gets company: its minutes go to a longer schedule.
FLAT_PASSES = {"strided-cnn": 43 / 3}
# the pooled models of one fold gained nothing past five (docs/measurements.md#the-flat-tail)
MAX_NETS_PER_FOLD = 5
# the recipe for budgets too short for a preset's own nets (see short_budget_recipe)
SHORT_BUDGET_PRESET = "quick"
# below this, the short-budget recipe's small net is far from converged, and its preset's
# fewer folds buy it more epochs (see docs/measurements.md#two-folds-for-quick)
SHORT_RECIPE_EPOCHS = 15


@dataclass(frozen=True)
class Rows:
    """How many images a pair trains on, scores each epoch, and predicts."""

    train: int
    holdout: int
    test: int


@dataclass(frozen=True)
class Setting:
    """What a plan is made for: each member's step timings, as the trial took them with
    every worker busy; the rows a pair trains, scores and predicts; and how many workers
    share how many cores (None: a core each)."""

    timings: dict[str, StepTiming]
    rows: Rows
    workers: int
    cores: int | None = None

    @property
    def core_count(self) -> int:
        return self.cores or self.workers


@dataclass(frozen=True)
class Plan:
    members: tuple[str, ...]
    epochs: float  # in tenths
    estimated_seconds: float  # from the plan's start to the run's end
    crowded_speed: float = 1.0  # of each worker while more workers than cores run
    why: str = ""  # why this many nets a fold, in a few words

    def to_dict(self) -> dict:
        return {
            "members": list(self.members),
            "nets_per_fold": len(self.members),
            "nets_why": self.why,
            "epochs": self.epochs,
            "estimated_minutes": round(self.estimated_seconds / 60, 1),
        }


def nets_a_fold(members: Sequence[str]) -> str:
    """How many nets a fold, and which: '2 nets a fold (strided-cnn x 2)'."""
    return f"{len(members)} net{'s' if len(members) > 1 else ''} a fold ({net_names(members)})"


def net_names(members: Sequence[str]) -> str:
    """The nets of a fold, each named once with its count: 'strided-cnn x 2, tiny-cnn'."""
    counts = {name: list(members).count(name) for name in dict.fromkeys(members)}
    return ", ".join(name + (f" x {n}" if n > 1 else "") for name, n in counts.items())


def epoch_seconds(timing: StepTiming, rows: Rows, config: CVConfig) -> float:
    """One epoch after the first: the training steps, then held-out rows scored for the
    learning curves and, with select_hard, the training rows to choose the next epoch's."""
    one, two = (training_seconds(timing, rows, replace(config, epochs=n)) for n in (1, 2))
    return two - one


def training_seconds(timing: StepTiming, rows: Rows, config: CVConfig) -> float:
    """config.epochs passes of training steps, as CVConfig.epoch_steps spreads them over whole
    epochs; held-out rows scored after every whole epoch."""
    epochs, steps_per_epoch = config.epoch_steps(rows.train)
    steps = epochs * steps_per_epoch
    scored = epochs * len(learning_curve_rows(rows.holdout, config))
    if config.select_hard:
        scored += (epochs - 1) * rows.train  # choosing the rows of each epoch after the first
    return steps * timing.step_seconds + scored * timing.predict_seconds


def passes(config: CVConfig, epochs: float) -> float:
    """`epochs` of `config` in passes over all of a fold's rows (with select_hard, an epoch
    trains on fewer), the unit of the limits above."""
    return epochs / (1 + config.select_hard)


def overhead_seconds(timing: StepTiming, rows: Rows, tta: int) -> float:
    """What a pair costs beside its epochs: start-up, predictions, saving."""
    predictions = (rows.holdout + rows.test) * timing.predict_seconds * (1 + tta)
    return timing.startup_seconds + predictions + SAVE_SECONDS


def pair_seconds(timing: StepTiming, rows: Rows, config: CVConfig, epochs: float) -> float:
    trained = training_seconds(timing, rows, replace(config, epochs=epochs))
    return trained + overhead_seconds(timing, rows, config.tta)


def run_seconds(config: CVConfig, members: Sequence[str], epochs: float, setting: Setting) -> float:
    """The run's seconds with the setting's workers, each pair with its member's timing: taken
    with every worker busy, each then at crowded_speed of a core to itself."""
    speed = plan_speed(members, setting)
    durations = [
        pair_seconds(setting.timings[architecture], setting.rows, config, epochs) * speed
        for _ in range(config.folds)
        for architecture in members
    ]
    cores = setting.core_count
    return makespan(durations, setting.workers, cores=cores, crowded_speed=speed) + FINISH_SECONDS


def plan_speed(members: Sequence[str], setting: Setting) -> float:
    """crowded_speed of the members' timings in this setting."""
    timings = [setting.timings[architecture] for architecture in members]
    return crowded_speed(timings, setting.workers, setting.core_count)


def crowded_speed(timings: Sequence[StepTiming], workers: int, cores: int) -> float:
    """The speed of each worker, as a share of a core to itself, while all `workers` are busy:
    1 with no more workers than cores; measured where the trial also timed the steps with
    only `cores` workers busy; else an even share of the cores."""
    if workers <= cores:
        return 1.0
    measured = [t for t in timings if t.uncrowded_step_seconds]
    if not measured:
        return cores / workers
    ratios = [t.uncrowded_step_seconds / t.step_seconds for t in measured]
    return min(1.0, sum(ratios) / len(ratios))


def best_plan(config: CVConfig, setting: Setting, seconds_left: float) -> Plan | None:
    """The nets a fold and the epochs, in tenths, that fit in `seconds_left`: as many of the
    preset's members as can each still have MIN_EPOCHS_PER_MEMBER (the first is always kept);
    where time is left past every member's flat tail, more nets a fold (more_nets). None where
    not even one epoch of the first member fits."""
    for count in range(len(config.members), 0, -1):
        members = config.members[:count]
        epochs = most_epochs(config, members, setting, seconds_left)
        if passes(config, epochs) >= MIN_EPOCHS_PER_MEMBER or (count == 1 and epochs >= 1):
            if count < len(config.members):
                why = (
                    f"{len(config.members)} nets a fold would each get fewer than "
                    f"{MIN_EPOCHS_PER_MEMBER} epochs"
                )
                return make_plan(config, members, epochs, setting, why)
            more = more_nets(config, setting, seconds_left)
            if more is not None:
                return more
            return make_plan(config, members, epochs, setting, nets_why(config))
    return None


def most_epochs(
    config: CVConfig, members: Sequence[str], setting: Setting, seconds_left: float
) -> float:
    """The most epochs, in tenths and up to MAX_EPOCHS passes, that `members` a fold can
    each have within SAFETY of `seconds_left`."""
    usable = seconds_left * SAFETY
    tenths = 0
    while passes(config, tenths / 10) < MAX_EPOCHS and (
        run_seconds(config, members, (tenths + 1) / 10, setting) <= usable
    ):
        tenths += 1
    return tenths / 10


def more_nets(config: CVConfig, setting: Setting, seconds_left: float) -> Plan | None:
    """The most nets a fold, past the preset's own and up to MAX_NETS_PER_FOLD, that each
    reach their flat tail (FLAT_PASSES) in `seconds_left`, the preset's members taken again in
    turn (each net its own seed); None where the nets were chosen by hand, a member's flat
    tail was never measured, or no extra net reaches it."""
    own = config.members
    if config.given_as_option("members") or any(n not in FLAT_PASSES for n in own):
        return None
    for count in range(MAX_NETS_PER_FOLD, len(own), -1):
        members = tuple(own[i % len(own)] for i in range(count))
        epochs = most_epochs(config, members, setting, seconds_left)
        if passes(config, epochs) >= max(FLAT_PASSES[name] for name in own):
            why = (
                f"the most nets a fold that each reach the flat tail at {flat_tail(config)}"
                if count < MAX_NETS_PER_FOLD
                else f"more than {MAX_NETS_PER_FOLD} nets a fold buy nothing measured: the rest "
                "of the minutes go to longer training"
            )
            return make_plan(config, members, epochs, setting, why)
    return None


def flat_tail(config: CVConfig) -> str:
    """The members' flat tail in the run's own epochs (a third of the rows each, with hard rows)."""
    epochs = max(FLAT_PASSES[name] for name in config.members) * (1 + config.select_hard)
    return f"{epochs:.0f} epochs"


def nets_why(config: CVConfig) -> str:
    """Why a plan keeps the preset's own nets a fold."""
    if config.given_as_option("members"):
        return "chosen with --members"
    if any(name not in FLAT_PASSES for name in config.members):
        return "no flat tail measured for these nets: the minutes go to longer training"
    nets = len(config.members) + 1
    return f"{nets} nets a fold would each stop short of the flat tail at {flat_tail(config)}"


def make_plan(
    config: CVConfig, members: Sequence[str], epochs: float, setting: Setting, why: str
) -> Plan:
    seconds = run_seconds(config, members, epochs, setting)
    return Plan(tuple(members), epochs, seconds, plan_speed(members, setting), why)


def uncrowded(setting: Setting) -> Setting | None:
    """The setting of one worker a core, with the trial's timings of only as many workers
    busy as there are cores (its second round); None where not measured."""
    timings = setting.timings
    if any(timing.uncrowded_step_seconds is None for timing in timings.values()):
        return None
    alone = {
        name: replace(
            timing,
            step_seconds=timing.uncrowded_step_seconds,
            predict_seconds=timing.predict_seconds
            * timing.uncrowded_step_seconds
            / timing.step_seconds,
            uncrowded_step_seconds=None,
        )
        for name, timing in timings.items()
    }
    return Setting(alone, setting.rows, setting.core_count, setting.core_count)


def training_planned(plan: Plan) -> float:
    """Epochs trained a fold, every net counted: what more minutes buy."""
    return len(plan.members) * plan.epochs


def plan_budget(config: CVConfig, setting: Setting, seconds_left: float) -> Plan:
    """best_plan, or one line saying how much time one epoch per pair needs."""
    plan = best_plan(config, setting, seconds_left)
    if plan is not None:
        return plan
    needed = run_seconds(config, config.members[:1], 1, setting) / SAFETY
    spent = config.budget_minutes * 60 - seconds_left
    raise UserError(
        f"a budget of {config.budget_minutes:g} min is too small for one epoch per pair "
        f"({config.folds} folds of {config.members[0]} need about "
        f"{(needed + spent) / 60:.1f} min here); give a larger --budget or fewer --folds"
    )


def short_budget_recipe(config: CVConfig, priors: Priors | None = None) -> CVConfig | None:
    """The quick preset's recipe (net, batch size, learning rate) for the competition's images
    (`priors`: its spec's, for the quick preset) with this run's own options (folds, seed,
    workers, budget and whatever else was chosen by hand), to use where the budget gives the
    preset's nets fewer than MIN_EPOCHS_PER_MEMBER epochs: a small net trained to
    convergence beats a big one stopped after a few epochs (see
    docs/measurements.md#small-nets-for-short-budgets).

    None where the run's nets were chosen by hand (--members) or already are the quick ones."""
    own = PRESETS.get(config.preset)
    if own is None or config.preset == SHORT_BUDGET_PRESET or config.members != own.members:
        return None
    kept = {"folds", "seed", "workers", "budget_minutes"}
    chosen = {
        field.name: getattr(config, field.name)
        for field in fields(CVConfig)
        if field.compare
        and field.name not in ("preset", "members", "epochs")
        and (field.name in kept or chosen_by_hand(config, own, field.name, priors))
    }
    recipe = preset_config(SHORT_BUDGET_PRESET, priors, **chosen)
    carried = {name: config.chosen_by.get(name, "preset") for name in chosen}
    return replace(recipe, chosen_by={**recipe.chosen_by, **carried})


def chosen_by_hand(config: CVConfig, preset: CVConfig, name: str, priors: Priors | None) -> bool:
    """Whether the field `name` was given as an option: as its chosen_by says; without chosen_by or
    priors to take the rest from, wherever it differs from its preset."""
    if config.chosen_by and priors is not None:
        return config.given_as_option(name)
    return getattr(config, name) != getattr(preset, name)
