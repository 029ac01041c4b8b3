"""A tiny model configuration shared by the model and CLI tests (fast on 2 CPU cores).

12 um field at 0.24 um/px (50 px input), two small conv blocks, 11 one-um bins (-5..+5 um).
"""

TINY = dict(
    field_um=12.0,
    pixel_size_um=0.24,
    conv_features=(4, 8),
    fc_features=32,
    z_min_um=-5.0,
    z_max_um=5.0,
)
