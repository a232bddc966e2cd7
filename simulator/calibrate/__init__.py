"""GPU microbenchmarks that produce calibration measurements (``servesim calibrate --measure``).

The measurements are written in the JSON-lines format of ``shared/calibration/README.md``,
extended as documented in ``hardware_specs/calibration/README.md``. PyTorch is imported
only inside the functions that time kernels (``pip install 'servesim[torch]'``), so the
rest of the package works without it. ``plan`` (the grids of shapes) needs no PyTorch.
"""
