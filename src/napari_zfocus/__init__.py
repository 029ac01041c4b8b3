"""napari-zfocus: CNN software autofocus for live-cell bright-field microscopy.

Wei & Roberts (Sci Rep 2018, 8:7313) showed that a small CNN reads the z-position of a
single bright-field image. This package covers the whole loop: annotate z-stacks, train
the CNN, inspect its predictions and hold focus live on a (simulated or real) microscope.

The core (``data``, ``simulation``, ``model``, ``control``) is Qt-free; ``_qt`` holds thin
napari widgets and ``cli`` the ``zfocus`` command line over the same core.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
