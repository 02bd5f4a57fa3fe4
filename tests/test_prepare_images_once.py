"""A batch that asks several questions about one image preprocesses that image once, with inputs identical to
preprocessing every row (and the processor is left as it was)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from mmdiag.adapters import generative
from mmdiag.api import load
from mmdiag.zoo.build import locate


@pytest.mark.parametrize("name", ["ref-llava-mlp", "ref-blip2"])
def test_repeated_images_are_preprocessed_once_with_identical_inputs(name, monkeypatch):
    adapter = load(str(locate(name)))
    noise = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8"))
    flat = Image.new("RGB", (64, 64), (10, 200, 30))
    images = [noise, noise, flat, noise, flat, flat]
    questions = [
        "Is there a red circle?",
        "Is there a cat?",
        "Is there a dog here?",
        "x",
        "y",
        "Is there a blue square?",
    ]
    inner = adapter.processor.image_processor
    calls: list[int] = []
    original = type(inner).__call__

    def counted(self, images, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(len(images))
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(type(inner), "__call__", counted)
    once = adapter.prepare(images, questions)
    assert calls[0] == 2  # two distinct images
    assert adapter.processor.image_processor is inner  # the wrapper is scoped to the call
    monkeypatch.setattr(generative, "_each_image_once", lambda processor, images: contextlib.nullcontext())
    every = adapter.prepare(images, questions)
    assert sorted(once.inputs) == sorted(every.inputs)
    for key in every.inputs:
        assert torch.equal(once.inputs[key], every.inputs[key]), key
