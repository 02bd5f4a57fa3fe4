"""results.json follows its published JSON Schema, for every family; broken documents are rejected."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from mmdiag.checkpoints.tiny import FAMILIES
from mmdiag.results import SCHEMA_PATH, read_results

SCHEMA = json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def documents(family_audits):
    """The results of the shared end-to-end audit of every family (the default suite: gates for every kind)."""
    return {family: read_results(out) for family, (out, _) in family_audits.items()}


def test_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("family", FAMILIES)
def test_results_validate(documents, family):
    jsonschema.validate(documents[family], SCHEMA, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("verdict"),
        lambda d: d.update(schema_version="0.9"),
        lambda d: d["gates"][0].update(passed="yes"),
        lambda d: next(iter(d["probes"].values()))["metrics"].update(f1={"value": "high"}),
        lambda d: d["metadata"]["model"].update(kind="oracle"),
    ],
)
def test_broken_documents_are_rejected(documents, breakage):
    doc = copy.deepcopy(documents["llava"])
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
