"""Do some tensors fit the network a :class:`ModelConfig` describes? (model files, checkpoints)

A model file or a checkpoint stores a configuration and a ``state_dict`` side by side; an
edit of one (``bin_um`` 1 -> 2, a z range, a pixel size) without the other would load
into a network that reads z wrongly, or fail deep in torch with a size-mismatch
traceback. :func:`state_dict_problem` compares names, shapes, dtypes and values against
the network built on torch's ``meta`` device (shapes only: nothing is allocated, however
large the file claims the network to be) and says in one line what does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.network import build_network

__all__ = ["expected_state", "parameter_shapes", "state_dict_problem"]


def _meta_network(config: ModelConfig) -> nn.Module:
    with torch.device("meta"):
        return build_network(config)


def expected_state(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{name: (shape, dtype)}`` of the ``state_dict`` of the network ``config`` describes."""
    net = _meta_network(config)
    return {name: (tuple(t.shape), t.dtype) for name, t in net.state_dict().items()}


def parameter_shapes(config: ModelConfig) -> list[tuple[int, ...]]:
    """Shapes of the trainable parameters in ``net.parameters()`` order (the optimiser's
    parameter indices)."""
    return [tuple(p.shape) for p in _meta_network(config).parameters()]


def _linear_names(config: ModelConfig) -> tuple[str, str]:
    """Module names of the first and the last fully connected layer."""
    modules = _meta_network(config).named_modules()
    linears = [name for name, m in modules if isinstance(m, nn.Linear)]
    return linears[0], linears[-1]


def _shape_problem(name: str, shape: tuple[int, ...], want: tuple[int, ...],
                   config: ModelConfig) -> str:
    """Say which setting a wrong shape contradicts, where one layer maps to one setting."""
    first_fc, last_fc = _linear_names(config)
    if name in (f"{last_fc}.weight", f"{last_fc}.bias") and shape[:1] != want[:1] and shape:
        return (
            f"the weights output {shape[0]} z-bins but the configuration describes "
            f"{config.n_bins} (bin_um {config.bin_um:g} over z {config.z_min_um:g}.."
            f"{config.z_max_um:g} um): metadata and weights do not belong together"
        )
    if name == f"{first_fc}.weight" and len(shape) == 2 and shape[0] == want[0]:
        return (
            f"the weights take {shape[1]} features but a {config.input_px} px input "
            f"(field_um {config.field_um:g} at pixel_size_um {config.pixel_size_um:g}) gives "
            f"{want[1]}: metadata and weights do not belong together"
        )
    return f"tensor {name!r} has shape {shape}, expected {want}"


def state_dict_problem(
    tensors: Any,
    config: ModelConfig,
    *,
    storage_dtypes: Iterable[torch.dtype] = (),
) -> str | None:
    """Why ``tensors`` cannot be loaded into the network of ``config``; ``None`` if they can.

    Parameters
    ----------
    tensors
        A ``state_dict``-like mapping read from a file (anything: it is checked).
    config
        The configuration stored next to it.
    storage_dtypes
        Extra dtypes allowed for floating-point tensors (model files may store float16).

    Returns
    -------
    str or None
        One line without the file name (the caller adds it).
    """
    if not isinstance(tensors, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        return "weights are not a mapping of names to tensors"
    expected = expected_state(config)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        return (
            f"weights do not match the {config.architecture} network "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    allowed_float = tuple(storage_dtypes)
    for name, (want_shape, want_dtype) in expected.items():
        t = tensors[name]
        if tuple(t.shape) != want_shape:
            return _shape_problem(name, tuple(t.shape), want_shape, config)
        ok_dtype = t.dtype == want_dtype or (
            want_dtype.is_floating_point and t.dtype in allowed_float
        )
        if not ok_dtype:
            return f"tensor {name!r} has dtype {t.dtype}, expected {want_dtype}"
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            return f"tensor {name!r} contains NaN or infinite weights"
        if name.endswith("running_var") and bool((t < 0).any()):
            # BatchNorm divides by sqrt(running_var + eps): a negative variance makes
            # every prediction NaN, whatever the image.
            return f"tensor {name!r} has negative values (a BatchNorm variance is >= 0)"
    return None
