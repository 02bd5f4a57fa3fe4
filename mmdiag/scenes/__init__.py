"""The synthetic world: procedural scenes with exact ground truth (see :mod:`mmdiag.scenes.render`)."""
