"""Visual contrastive decoding (Leng et al., CVPR 2024): decide from logits contrasted with those of a distorted
image.

The arithmetic is VCD's ``vcd_sample`` (DAMO-NLP-SG/VCD @ d6568ff, ``vcd_utils/vcd_sample.py`` L150-153) on the
first answer token: ``(1 + alpha) * l - alpha * l_cd``, where ``l_cd`` are the logits with the preprocessed image
tensor under forward-diffusion noise at step ``t`` (``vcd_add_noise.py``'s sigmoid schedule:
:func:`mmdiag.blind_inputs.vcd_noise`), and tokens whose clean logit is below ``log(beta) + max l`` set to
``-inf`` (the adaptive plausibility constraint). mmdiag reads the yes/no decision from that distribution
(P(yes) against P(no)) instead of sampling from it. Applied to the yes/no decisions of every probe that scores
them; free-text answers and captions are generated without it.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from functools import partial
from typing import Any

import torch

from mmdiag.adapters import attention_edits
from mmdiag.adapters.base import GENERATIVE, Adapter
from mmdiag.blind_inputs import VCD_STEPS, vcd_noise
from mmdiag.interventions.base import Intervention, Param, number


def vcd_logits(logits: torch.Tensor, logits_cd: torch.Tensor, alpha: float = 1.0, beta: float = 0.1) -> torch.Tensor:
    """VCD's contrasted next-token logits ([rows, vocab]): ``(1+alpha) l - alpha l_cd``, ``-inf`` where the clean
    logit is below ``log(beta) + max l``."""
    logits, logits_cd = logits.float(), logits_cd.float()
    cutoff = math.log(beta) + logits.max(dim=-1, keepdim=True).values
    contrasted = (1 + alpha) * logits - alpha * logits_cd
    return contrasted.masked_fill(logits < cutoff, float("-inf"))


def _then(first: Any, second: Any) -> Any:
    def both(pixels: torch.Tensor) -> torch.Tensor:
        return second(first(pixels) if first is not None else pixels)

    return both


class VisualContrastiveDecoding(Intervention):
    name = "vcd"
    description = (
        "yes/no decisions from logits contrasted with those of the image under diffusion noise (VCD), with the "
        "plausibility cutoff; free-text answers and captions unchanged"
    )
    reference = "Leng et al. CVPR 2024; DAMO-NLP-SG/VCD @ d6568ff (vcd_sample.py L150-153, vcd_add_noise.py)"
    params = {
        "alpha": Param(1.0, number(0.0, 100.0), "cd_alpha: weight of the contrast (VCD's default 1)"),
        "beta": Param(0.1, number(1e-6, 1.0), "cd_beta: plausibility cutoff, a share of the top token's probability"),
        "t": Param(500, number(0, VCD_STEPS - 1, integer=True), "noise_step of the diffusion noise (0-999)"),
    }

    @property
    def contrasts_decisions(self) -> bool:
        return True

    def unsupported_reason(self, adapter: Adapter) -> str | None:
        if (reason := super().unsupported_reason(adapter)) is not None:
            return reason
        if adapter.kind != GENERATIVE:
            return "needs a generative model's next-token logits"
        return None

    def applied(self, adapter: Adapter) -> contextlib.AbstractContextManager[None]:
        alpha, beta, t = self.values["alpha"], self.values["beta"], self.values["t"]

        def counterpart(request: Any) -> Any:
            seed = zlib.crc32(request.image.tobytes()) & 0x7FFFFFFF  # the image's own noise, run after run
            noise = partial(vcd_noise, t=t, seed=seed)
            return type(request)(request.image, list(request.questions), _then(request.pixel_transform, noise))

        return attention_edits.contrast(
            attention_edits.Contrast(self.name, counterpart, partial(vcd_logits, alpha=alpha, beta=beta))
        )
