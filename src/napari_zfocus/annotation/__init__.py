"""Classic focus scores and the in-focus suggestion (numpy/scipy only, no torch)."""

from __future__ import annotations

from .focus_scores import (
    FOCUS_SCORES,
    brenner,
    normalized_variance,
    tenengrad,
    variance_of_laplacian,
)
from .suggestion import FocusSuggestion, contrast_profile, suggest_focus

__all__ = [
    "FOCUS_SCORES",
    "FocusSuggestion",
    "brenner",
    "contrast_profile",
    "normalized_variance",
    "suggest_focus",
    "tenengrad",
    "variance_of_laplacian",
]
