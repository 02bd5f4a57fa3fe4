"""Example images for the reports, re-made from the stored ``to_dict`` of each example by the run's own data
source (``config.data``; the synthetic scenes when absent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from mmdiag.errors import MmdiagError
from mmdiag.report import figures
from mmdiag.sources import DataSource, SourceRegistry


class ExampleImages:
    """Images of stored examples at the run's resolution; ``None`` where the source is not installed here."""

    def __init__(self, source: DataSource | None, resolution: int) -> None:
        self.source = source
        self.resolution = resolution

    @classmethod
    def of_run(
        cls,
        config: Mapping[str, Any],
        resolution: int,
        sources: SourceRegistry | None = None,
        data_params: Mapping[str, Any] | None = None,
    ) -> ExampleImages:
        """The run's data source, made from ``data_params`` when given (where the data was found), else from the
        parameters the run recorded; ``None`` (no pictures) when it is not installed or its files do not read."""
        params = dict(config.get("data_params", {}) if data_params is None else data_params)
        try:
            source = (sources or SourceRegistry()).create(config.get("data", "scenes"), **params)
            source.size()  # reads a file-based source's annotations now: a missing folder means no pictures
        except MmdiagError:
            source = None
        return cls(source, resolution)

    def image(self, data: Mapping[str, Any] | None) -> Image.Image | None:
        if self.source is None or not data:
            return None
        return self.source.example_from_dict(data).image(self.resolution)

    def array(self, data: Mapping[str, Any] | None) -> np.ndarray | None:
        image = self.image(data)
        return None if image is None else np.asarray(image)

    def uri(self, data: Mapping[str, Any] | None) -> str | None:
        image = self.image(data)
        return None if image is None else figures.image_uri(image)
