"""mmdiag: audit vision-language models for multimodal misalignment.

The library API lives in :mod:`mmdiag.api` (``load``, ``audit``, ``render_report``); the command
line in :mod:`mmdiag.cli` is a thin layer over it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
