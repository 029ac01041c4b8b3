"""Defocus features of bright-field images: scale-space statistics and the radial spectrum.

Why these features. The bright-field image of a thin phase and absorption object at
defocus ``z`` is the object filtered by the defocus transfer function, whose zeros sit at
spatial frequencies ``~ sqrt(n / (lambda z))`` and whose envelope falls with ``z`` times
the condenser aperture. Above focus cells act as lenses and show bright cores, below focus
dark ones. So the defocus is written in (1) how the image's energy is spread over spatial
scales and frequencies, and (2) the sign and shape of the intensity distribution at each
scale. Both are statistics over the whole field: they do not depend on where the cells
are, which is why a model that reads them needs far fewer annotated stacks than a CNN
that must learn such invariances from examples (README, "Beyond our own simulator").

:class:`DefocusFeatures` computes the features that :mod:`.feature_layout` lists, for a
batch of network inputs, in float32 whatever autocast is active (FFTs in float16 are
neither supported everywhere nor precise enough). It has no trainable parameters; its
buffers are derived from the input setting and are not saved in model files.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from napari_zfocus.model.feature_layout import (
    BAND_QUANTILES,
    IMAGE_QUANTILES,
    feature_layout,
    linear_ring_edges,
    log_ring_edges,
)
from napari_zfocus.model.preprocess import block_mean

__all__ = ["DefocusFeatures"]

#: (indices below, indices above, weight of the upper) of quantiles of sorted values.
_QuantileTable = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

#: Quantiles are read from at most this many pixels of a band (an even subsample): a
#: torch sort of 62 500 pixels takes 6 ms on a CPU core, of 4096 0.3 ms, and 4096 pixels
#: keep the 1 % quantile within ~0.05 standard deviations.
_MAX_QUANTILE_PIXELS = 4096
_EPS = 1e-6


def _ring_index(shape: tuple[int, int], pixel_size_um: float, edges: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ring of every ``rfft2`` coefficient (``len(edges) - 1`` = outside) and ring sizes."""
    fy = torch.fft.fftfreq(shape[0], d=pixel_size_um)
    fx = torch.fft.rfftfreq(shape[1], d=pixel_size_um)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).reshape(-1)
    rings = len(edges) - 1
    idx = torch.bucketize(radius, edges.to(radius.dtype), right=True) - 1
    idx = torch.where((idx >= 0) & (idx < rings), idx, torch.full_like(idx, rings))
    counts = torch.bincount(idx, minlength=rings + 1)[:rings].to(torch.float32)
    return idx, counts


class DefocusFeatures(nn.Module):
    """Feature vector ``(N, F)`` of a batch of square inputs ``(N, 1, H, W)``.

    Parameters
    ----------
    pixel_size_um, field_um
        The network's input setting (sets the pyramid depth and the spectrum's rings in
        cycles/um).
    """

    def __init__(self, pixel_size_um: float, field_um: float) -> None:
        super().__init__()
        self.pixel_size_um = float(pixel_size_um)
        self.field_um = float(field_um)
        self.layout = feature_layout(self.pixel_size_um, self.field_um)
        edges = [log_ring_edges(self.pixel_size_um, self.field_um),
                 linear_ring_edges(self.pixel_size_um, self.field_um)]
        self._edges = [torch.as_tensor(e, dtype=torch.float64) for e in edges]
        self._rings: dict[tuple[int, int, str], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._quantile_tables: dict[tuple[Any, ...], _QuantileTable] = {}
        self._windows: dict[tuple[int, int, str], torch.Tensor] = {}

    @property
    def n_features(self) -> int:
        """Length of the feature vector."""
        return self.layout.n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No parameters here, so no gradients: building autograd graphs for ~200 small
        # operations would cost more than computing them.
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float().reshape(x.shape[0], 1, x.shape[-2], x.shape[-1])
            x = _zscore(x)
            parts = [self._quantiles(x, IMAGE_QUANTILES)]
            parts += self._scale_space(x)
            parts += self._spectrum(x)
            return torch.cat(parts, dim=1)

    # -- pieces ---------------------------------------------------------------------------
    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Binomial blur (1 4 6 4 1)/16 along both axes, sigma 1 px.

        Written as four sums of neighbouring pairs per axis ((1 1) convolved four times is
        (1 4 6 4 1)): a 1-channel 5-tap convolution costs ~0.9 ms on a 250 px image in
        oneDNN, the pair sums ~0.1 ms.
        """
        for dim in (-1, -2):
            pad = (2, 2, 0, 0) if dim == -1 else (0, 0, 2, 2)
            mode = "reflect" if x.shape[dim] > 2 else "replicate"
            x = F.pad(x, pad, mode=mode)
            for _ in range(4):
                n = x.shape[dim] - 1
                x = x.narrow(dim, 0, n) + x.narrow(dim, 1, n)
        return x * (1 / 256)

    def _quantiles(self, x: torch.Tensor, q: tuple[float, ...]) -> torch.Tensor:
        """Quantiles ``q`` of every image's pixels (linear interpolation), ``(N, len(q))``."""
        flat = x.reshape(x.shape[0], -1)
        step = max(1, math.ceil(flat.shape[1] / _MAX_QUANTILE_PIXELS))
        ordered = _sorted_rows(flat[:, ::step])
        lo, hi, frac = self._quantile_table(int(ordered.shape[1]), q, ordered.device)
        a, b = ordered[:, lo], ordered[:, hi]
        return a + (b - a) * frac

    def _quantile_table(self, n: int, q: tuple[float, ...], device: torch.device,
                        ) -> _QuantileTable:
        """Indices below and above each quantile of ``n`` sorted values, and the weight
        of the upper one (cached: building them costs more than reading them)."""
        key = (n, q, str(device))
        if key not in self._quantile_tables:
            pos = [qi * (n - 1) for qi in q]
            lo = [int(math.floor(p_)) for p_ in pos]
            hi = [min(i + 1, n - 1) for i in lo]
            frac = [p_ - i for p_, i in zip(pos, lo, strict=True)]
            self._quantile_tables[key] = (
                torch.tensor(lo, device=device), torch.tensor(hi, device=device),
                torch.tensor(frac, dtype=torch.float32, device=device))
        return self._quantile_tables[key]

    def _scale_space(self, x: torch.Tensor) -> list[torch.Tensor]:
        bands = []
        g = x
        for _ in range(self.layout.levels):
            blurred = self._blur(g)
            bands.append(g - blurred)
            g = blurred[..., ::2, ::2]  # the blur is the anti-aliasing filter
        bands.append(g)
        # Raw moments and quantiles of every band, then the statistics for all bands at
        # once: a per-band chain of small scalar operations costs more than the sums.
        raw = torch.stack([_raw_moments(band) for band in bands], dim=1)  # (N, B, 4)
        quant = torch.stack([self._quantiles(band, BAND_QUANTILES) for band in bands], dim=1)
        m1, m2, m3, m4 = raw.unbind(dim=2)
        std = (m2 - m1 * m1).clamp(min=0).sqrt() + _EPS
        c3 = m3 - 3 * m1 * m2 + 2 * m1.pow(3)
        c4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1.pow(4)
        stats = torch.cat([
            torch.log(std).unsqueeze(2),
            (c3 / std.pow(3)).unsqueeze(2),
            torch.log(c4.clamp(min=0) / std.pow(4) + _EPS).unsqueeze(2),
            (quant - m1.unsqueeze(2)) / std.unsqueeze(2),
        ], dim=2)
        sums = torch.stack([_coupling_sums(f, c) for f, c in zip(bands[:-1], bands[1:],
                                                                  strict=True)], dim=1)
        return [stats.reshape(x.shape[0], -1), _coupling(sums)]

    def _spectrum(self, x: torch.Tensor) -> list[torch.Tensor]:
        shape = (int(x.shape[-2]), int(x.shape[-1]))
        key = (shape[0], shape[1], str(x.device))
        if key not in self._windows:
            self._windows[key] = (
                torch.hann_window(shape[0], periodic=False, device=x.device)[:, None]
                * torch.hann_window(shape[1], periodic=False, device=x.device)[None, :])
        window = self._windows[key]
        # |c|^2 as re^2 + im^2: abs() of a complex tensor costs a hypot and a square root.
        power = torch.view_as_real(torch.fft.rfft2(x[:, 0] * window)).pow(2).sum(dim=-1)
        power = power.reshape(x.shape[0], -1)
        power = power / (shape[0] * shape[1])
        out = []
        for idx, counts in self._ring_tables(shape, x.device):
            rings = counts.shape[0]
            sums = torch.zeros(x.shape[0], rings + 1, device=x.device, dtype=power.dtype)
            sums.index_add_(1, idx, power)
            log_power = torch.log(sums[:, :rings] / counts.clamp(min=1) + 1e-10)
            out.append(log_power - log_power.mean(dim=1, keepdim=True))
        return out

    def _ring_tables(self, shape: tuple[int, int], device: torch.device,
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        key = (shape[0], shape[1], str(device))
        if key not in self._rings:
            tables = []
            for edges in self._edges:
                idx, counts = _ring_index(shape, self.pixel_size_um, edges)
                tables.append((idx.to(device), counts.to(device)))
            self._rings[key] = tables
        return self._rings[key]


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """Every row of a 2-D tensor in ascending order.

    On the CPU numpy's sort is used: for rows of a few thousand values it is 7-10x
    faster than ``torch.sort`` (0.03 against 0.25 ms per row), and the features need
    no gradient.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return x.sort(dim=1).values


def _mean_pool2(x: torch.Tensor) -> torch.Tensor:
    """Means of 2 x 2 blocks of ``(N, C, H, W)``; an odd last row or column is averaged
    with itself, which is ``avg_pool2d(x, 2, ceil_mode=True)`` at a third of its cost
    (the preprocessing's strided block sums, ~0.1 against ~0.3 ms at 250 px)."""
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate")
    return block_mean(x, 2)


def _zscore(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(dim=1).view(-1, 1, 1, 1)
    std = flat.std(dim=1, correction=0).view(-1, 1, 1, 1)
    return (x - mean) / (std + _EPS)


def _raw_moments(band: torch.Tensor) -> torch.Tensor:
    """Means of ``b, b^2, b^3, b^4`` over every image of a band, ``(N, 4)``."""
    flat = band.reshape(band.shape[0], -1)
    sq = flat * flat
    # One mean over stacked powers: four separate reductions cost more in call overhead
    # than the copy, for all but the largest band.
    return torch.stack([flat, sq, sq * flat, sq * sq], dim=1).mean(dim=2)


def _coupling_sums(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Sums for :func:`_coupling` of a band and the next coarser one, ``(N, 8)``."""
    n = fine.shape[0]
    down = _mean_pool2(fine).reshape(n, -1)
    energy = _mean_pool2(fine * fine).reshape(n, -1)
    c = coarse.reshape(n, -1)
    bright = (c > c.mean(dim=1, keepdim=True)).to(energy.dtype)
    return torch.stack([down, c, down * c, down * down, c * c, energy * bright, bright,
                        energy], dim=1).mean(dim=2)


def _coupling(sums: torch.Tensor) -> torch.Tensor:
    """Per pair of neighbouring bands: their correlation, and where the finer one's energy
    sits, from :func:`_coupling_sums` ``(N, P, 8)``; ``(N, 2 P)``.

    The log ratio of the fine band's energy over bright vs dark parts of the coarse band
    tells fine detail on bright cores (above focus) from detail on dark cores (below).
    """
    m_d, m_c, m_dc, m_dd, m_cc, e_bright, f_bright, e_all = sums.unbind(dim=2)
    var_d = (m_dd - m_d * m_d).clamp(min=0)
    var_c = (m_cc - m_c * m_c).clamp(min=0)
    corr = (m_dc - m_d * m_c) / ((var_d * var_c).sqrt() + _EPS)
    bright = e_bright / (f_bright + _EPS)
    dark = (e_all - e_bright) / (1 - f_bright + _EPS)
    ratio = torch.log((bright + _EPS) / (dark + _EPS))
    return torch.stack([corr, ratio], dim=2).reshape(sums.shape[0], -1)
