"""The one reader of a run's members: the (fold, member) models of a complete run, and of a
blend the members of its source runs with the blend's weights; each model loaded on
whichever Keras backend this process runs. `predict` and the page both ask here."""

from dataclasses import dataclass
from pathlib import Path

from kaggle_digits.base.errors import UserError
from kaggle_digits.options.config import CVConfig
from kaggle_digits.store.run_files import model_path, pair_dir, read_settled


@dataclass(frozen=True)
class TrainedRun:
    """A `cv` run whose models an ensemble holds, with its share of the ensemble."""

    run_dir: Path
    weight: float  # 1 for a run on its own; in a blend, the product of the blends' weights
    prefix: str  # "" on its own; "<source run>/" in a blend
    config: CVConfig  # its options, for the test-time views

    @property
    def pairs(self) -> list[tuple[int, int, str]]:
        """(fold, member, architecture) of each model, fold by fold."""
        return self.config.pair_names

    def model_path(self, fold: int, member: int, architecture: str) -> Path:
        return model_path(pair_dir(self.run_dir, fold, member, architecture))


def trained_runs(run_dir: Path, weight: float = 1.0, prefix: str = "") -> list[TrainedRun]:
    """The `cv` runs behind a complete run: itself, or a blend's sources (recursively) with a
    weight above zero, each weighted by its share."""
    run_dir = Path(run_dir)
    saved = read_settled(run_dir)
    if "sources" not in saved:
        return [TrainedRun(run_dir, weight, prefix, CVConfig.from_dict(saved))]
    runs = []
    for source, share in zip(saved["sources"], saved["weights"], strict=True):
        if share > 0:
            runs += trained_runs(run_dir.parent / source, weight * share, f"{source}/")
    return runs


def load_model(path: Path):
    """A saved pair model, on whichever Keras backend this process runs (a .keras file holds
    no backend's code, so a model trained on one loads on any), or one line saying why not."""
    import keras

    from kaggle_digits.models import layers  # noqa: F401  (registers the custom layers)

    try:
        return keras.saving.load_model(path)
    except FileNotFoundError:
        raise UserError(f"{path}: the model file is missing") from None
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{path}: cannot load the model with the {keras.backend.backend()} backend ({reason})"
        ) from None
