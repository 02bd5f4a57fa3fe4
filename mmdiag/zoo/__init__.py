"""Reference models trained on the synthetic scenes (see :mod:`mmdiag.zoo.recipes`)."""
