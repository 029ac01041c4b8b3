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


def write_untrained_model(path, seed: int = 0):
    """A randomly initialised TINY model file, for tests of plumbing rather than accuracy."""
    import torch

    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.io import save_model
    from napari_zfocus.model.network import build_network

    torch.manual_seed(seed)
    config = ModelConfig(**TINY)
    return save_model(path, build_network(config), config)


def write_noise_dataset(folder, n_stacks: int, shape: tuple[int, int, int], focus_index: int,
                        pixel_size_um: float = 0.24, seed: int = 0):
    """``n_stacks`` uniform-noise uint16 stacks (1 um steps) and their annotations.csv."""
    import numpy as np

    from napari_zfocus.data import Annotation, write_annotations, write_stack

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    annotations = []
    for i in range(n_stacks):
        data = rng.integers(100, 4000, shape, dtype=np.uint16)
        write_stack(folder / f"s{i}.tif", data, z_step_um=1.0, pixel_size_um=pixel_size_um)
        annotations.append(Annotation(f"s{i}.tif", focus_index, 1.0, pixel_size_um))
    write_annotations(folder, annotations)
    return folder
