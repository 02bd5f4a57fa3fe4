"""``--data`` and ``--images``: which data source an audit runs on, in the command line's words.

``scenes`` (the default: seeded synthetic scenes), ``coco:DIR`` (a COCO-format folder or instances JSON, images
found beside it or given with ``--images``), ``pope:FILE[,FILE...] --images DIR`` (official POPE question files),
``relations:FILE --images DIR`` (What'sUp / VSR-style relation sets), or the name of a source a package registered
under the ``mmdiag.sources`` entry point.
"""

from __future__ import annotations

from typing import Any

from mmdiag.errors import ConfigError

USAGE = (
    "--data takes scenes, coco:DIR, pope:FILE[,FILE...] --images DIR, relations:FILE --images DIR, or the name of "
    "an installed data source"
)
PHOTO_RESOLUTION = 336  # real photos: the side images are squashed to when --resolution is not given

# source name -> the parameter its path goes to, and whether --images is required
PATH_SOURCES: dict[str, tuple[str, bool]] = {
    "coco": ("root", False),
    "pope": ("questions", True),
    "relations": ("path", True),
}


def parse_data_spec(spec: str | None, images: str | None) -> tuple[str, dict[str, Any]]:
    """(source name, its constructor parameters) for ``--data spec --images images``."""
    if spec is None or spec == "scenes":
        if images is not None:
            raise ConfigError("--images goes with --data coco:DIR, pope:FILE or relations:FILE, not with the scenes")
        return "scenes", {}
    name, sep, path = spec.partition(":")
    name = name.strip()
    if name in PATH_SOURCES:
        key, needs_images = PATH_SOURCES[name]
        if not sep or not path.strip():
            raise ConfigError(
                f"--data {spec}: name the {'folder' if name == 'coco' else 'file'} after '{name}:': {USAGE}"
            )
        if needs_images and images is None:
            raise ConfigError(f"--data {spec} needs --images DIR, the folder holding the images its entries name")
        return name, {key: path.strip(), "images": images}
    if sep or not name:
        raise ConfigError(f"--data {spec}: unknown form; {USAGE}")
    if images is not None:
        return name, {"images": images}
    return name, {}
