"""mkdocs hook: each ``<!-- mmdiag:NAME ARG -->`` marker of a page becomes the table :mod:`mmdiag.docs_tables`
generates (from the code or from ``bench/results``); an unknown marker fails the build."""

from __future__ import annotations

import re
from typing import Any

from mmdiag.docs_tables import TABLES

MARKER = re.compile(r"<!-- mmdiag:([\w-]+)(?: ([^>]*?))? -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match) -> str:
        name, arg = match.group(1), (match.group(2) or "").strip()
        if name not in TABLES:
            raise ValueError(f"{page.file.src_path}: unknown table marker {name!r} (known: {', '.join(TABLES)})")
        return TABLES[name](arg)

    return MARKER.sub(replace, markdown)
