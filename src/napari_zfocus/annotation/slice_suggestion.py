"""The in-focus slice suggested for one stack, computed in a worker (plain data in and out)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_zfocus.annotation.suggestion import suggest_focus
from napari_zfocus.data.stack import ZStack, read_stack

#: Suggestion confidence below which the dock says "unsure" and names the runner-up.
UNSURE_BELOW = 0.5


@dataclass(frozen=True)
class SliceSuggestion:
    """A suggested in-focus slice for one stack (computed in a worker, plain data)."""

    name: str
    index: int
    source: str  # "classic" (contrast dip) or "model" (predicted z nearest 0)
    confidence: float
    runner_up: int | None = None

    @property
    def note(self) -> str:
        """What to tell the annotator when the suggestion is unsure, else ""."""
        if self.confidence >= UNSURE_BELOW:
            return ""
        other = f", runner-up slice {self.runner_up}" if self.runner_up is not None else ""
        return f"unsure: confidence {self.confidence:.2f}{other}"


def suggest_slice(
    path: str | Path,
    name: str,
    z_step_um: float,
    pixel_size_um: float,
    predictor: object | None = None,
) -> SliceSuggestion:
    """Suggest the in-focus slice of the stack at ``path``.

    Without a model: the bright-field suggestion (sign flip, else contrast dip) of
    :func:`napari_zfocus.annotation.suggestion.suggest_focus`. With a model
    (:class:`napari_zfocus.model.inference.Predictor`): the slice whose predicted z is
    nearest 0. Reads the whole stack; meant for a worker thread.

    Raises
    ------
    ZFocusError
        Unreadable stack, too few slices, or images too small for the model's field.
    """
    stack = read_stack(path, z_step_um=z_step_um, pixel_size_um=pixel_size_um)
    images = stack.to_numpy()
    if predictor is not None:
        predictions = predictor.predict_batch(images, pixel_size_um)  # type: ignore[attr-defined]
        z = np.array([p.z_um for p in predictions], dtype=float)
        index = int(np.argmin(np.abs(z)))
        return SliceSuggestion(name, index, "model", float(predictions[index].confidence))
    # As a ZStack so that a refusal ("no contrast ...") names the file, not "<array>".
    found = suggest_focus(
        ZStack(images, z_step_um, pixel_size_um, path=Path(path)), classic_scores=False
    )
    return SliceSuggestion(
        name, int(found.focus_index), "classic", float(found.confidence), found.runner_up
    )
