"""Golden outputs of the peers' own intervention arithmetic, on seeded random tensors (run: python make_goldens.py).

- VCD (DAMO-NLP-SG/VCD @ d6568ff81b8fd306a49e630df44f2db5c2300191, Apache-2.0): ``vcd_utils/vcd_sample.py``
  L150-153 (the contrast and the adaptive plausibility cutoff) and ``vcd_utils/vcd_add_noise.py`` L3-28 (the
  diffusion schedule), copied below with the Gaussian draw passed in (the original draws it from the global RNG).
- Attention knockout (FightingFighting/cross-modal-information-flow-in-MLLM @
  c9a1111dac4baa175f67716fab473789320187c0, MIT; the pattern of Geva et al. 2023): ``methods.py`` L43-96 builds an
  additive mask ``(1 - M) * finfo(dtype).min`` from a causal ``M`` with the blocked (row, column) pairs zeroed, and
  the attention forward uses it in place of the causal mask.

- FastV (pkunlp-icler/FastV @ d1659729b5bf1be225e99ee15783deeea80f63b1; the repository states no license, so the
  ranking is restated here from ``src/transformers/src/transformers/models/llama/modeling_llama.py`` L738-750, not
  copied): the mean over heads of layer K-1's attention, batch item 0, the last query row, the image slice's top
  ``rank`` positions shifted by the system length, joined with every other position and sorted.
- PAI (LALBJ/PAI @ 9bbd8bd57a0b0923f996197e4bd3e02cc10b8d58, MIT, (c) 2024 ShiLiu): ``attention.py`` L68-95 (the
  mask added and clamped, then the last query row's image keys amplified, before the softmax) and ``CFG.py`` L28-57
  (``__call__`` of ``CFGLogits`` with the unconditional forward's logits passed in), copied below.

None of these functions imports mmdiag; the tests compare mmdiag's implementations with these files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


# --- VCD, vcd_utils/vcd_sample.py L150-153 (inside `sample`), the names as there
def vcd_reference(next_token_logits, next_token_logits_cd, cd_alpha, cd_beta):
    cutoff = torch.log(torch.tensor(cd_beta)) + next_token_logits.max(dim=-1, keepdim=True).values
    diffs = (1 + cd_alpha) * next_token_logits - cd_alpha * next_token_logits_cd
    cd_logits = diffs.masked_fill(next_token_logits < cutoff, -float("inf"))
    return cd_logits


# --- VCD, vcd_utils/vcd_add_noise.py, with `noise` passed in instead of torch.randn_like(x_0)
def add_diffusion_noise(image_tensor, noise_step, noise):
    num_steps = 1000  # Number of diffusion steps
    betas = torch.linspace(-6, 6, num_steps)
    betas = torch.sigmoid(betas) * (0.5e-2 - 1e-5) + 1e-5
    alphas = 1 - betas
    alphas_prod = torch.cumprod(alphas, dim=0)
    alphas_bar_sqrt = torch.sqrt(alphas_prod)
    one_minus_alphas_bar_sqrt = torch.sqrt(1 - alphas_prod)

    def q_x(x_0, t):
        alphas_t = alphas_bar_sqrt[t]
        alphas_1_m_t = one_minus_alphas_bar_sqrt[t]
        return alphas_t * x_0 + alphas_1_m_t * noise

    noisy_image = image_tensor.clone()
    return q_x(noisy_image, noise_step)


# --- knockout, methods.py L43-96: the additive mask that replaces the causal one
def knockout_mask(q_length, num_tokens, from_to_index, dtype):
    if q_length == 1:
        m = torch.ones((q_length, num_tokens), dtype=torch.uint8)
    else:
        m = torch.tril(torch.ones((q_length, num_tokens), dtype=torch.uint8))
    if from_to_index:
        rows, cols = zip(*from_to_index)
        m[list(rows), list(cols)] = 0
    m = m.repeat(1, 1, 1, 1).to(dtype)
    return (1.0 - m) * torch.finfo(dtype).min


# --- FastV, the ranking of modeling_llama.py L738-750 (restated)
def fastv_keep(last_layer_attention, sys_length, image_token_length, attention_rank, seq_length):
    average = torch.mean(last_layer_attention, dim=1)[0]
    last_token = average[-1]
    image = last_token[sys_length : sys_length + image_token_length]
    top = image.topk(attention_rank).indices + sys_length
    keep = torch.cat(
        (torch.arange(sys_length), top, torch.arange(sys_length + image_token_length, seq_length))
    )
    return keep.sort().values


# --- PAI, attention.py L68-95 (inside llama_new_forward; self.* passed in), the names as there
def pai_attention(attn_weights, attention_mask, use_attn, use_cfg, alpha, img_start_idx, img_end_idx):
    attn_weights = attn_weights.clone()
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
        attn_weights = torch.max(attn_weights, torch.tensor(torch.finfo(attn_weights.dtype).min))

    ### PAI's modification
    if use_attn and not use_cfg:
        attn_weights[:, :, -1, img_start_idx:img_end_idx] = (
            attn_weights[:, :, -1, img_start_idx:img_end_idx].abs() * alpha
            + attn_weights[:, :, -1, img_start_idx:img_end_idx]
        )
    ### PAI's modification

    return torch.nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32)


# --- PAI, CFG.py L28-57 (CFGLogits.__call__, the unconditional forward's last logits passed in)
def pai_cfg(scores, unconditional_last_logits, guidance_scale):
    F = torch.nn.functional
    scores = F.log_softmax(scores, dim=-1)
    if guidance_scale == 1:
        return scores
    unconditional_logits = F.log_softmax(unconditional_last_logits, dim=-1)

    cutoff = torch.log(torch.tensor(0.1)) + scores.max(dim=-1, keepdim=True).values
    out = guidance_scale * (scores - unconditional_logits) + unconditional_logits
    cd_logits = out.masked_fill(scores < cutoff, -float("inf"))
    return cd_logits


def main() -> None:
    g = torch.Generator().manual_seed(0)
    logits, logits_cd = torch.randn(4, 50, generator=g) * 3, torch.randn(4, 50, generator=g) * 3
    cases = []
    for alpha, beta in ((1.0, 0.1), (0.5, 0.2), (2.0, 0.05)):
        out = vcd_reference(logits, logits_cd, alpha, beta)
        cases.append(
            {"alpha": alpha, "beta": beta, "cd_logits": out.tolist(), "probs": torch.softmax(out, -1).tolist()}
        )
    pixels, noise = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    noised = {t: add_diffusion_noise(pixels, t, noise).tolist() for t in (0, 500, 999)}
    # knockout: 10 tokens, image tokens 2..5, the question (6..9) blocked from the image; one layer's attention
    q, k = torch.randn(1, 2, 10, 8, generator=g), torch.randn(1, 2, 10, 8, generator=g)
    scores = q @ k.transpose(-1, -2) / 8**0.5
    blocked = [(row, col) for row in range(6, 10) for col in range(2, 6)]
    probs = torch.softmax(scores + knockout_mask(10, 10, blocked, torch.float32), dim=-1)
    # FastV: 5 system tokens, 36 image tokens, 7 text tokens; the attention of layer K-1 (rows sum to 1)
    attention = torch.softmax(torch.randn(1, 2, 48, 48, generator=g) * 2, dim=-1)
    fastv = {
        "attention": attention.tolist(),
        "sys": 5,
        "image": 36,
        "keep": {str(rank): fastv_keep(attention, 5, 36, rank, 48).tolist() for rank in (9, 18, 27)},
    }
    # PAI: 12 tokens, image tokens 3..8, the last row amplified; the causal mask as LLaMA's additive one
    w = torch.randn(1, 2, 12, 12, generator=g) * 2
    causal = (1.0 - torch.ones(12, 12).tril()) * torch.finfo(torch.float32).min
    c_logits, u_logits = torch.randn(4, 50, generator=g) * 3, torch.randn(4, 50, generator=g) * 3
    pai = {
        "scores": w.tolist(),
        "image": [3, 9],
        "probs": {str(a): pai_attention(w, causal, True, False, a, 3, 9).tolist() for a in (0.2, 0.5, 1.0)},
        "logits": c_logits.tolist(),
        "logits_u": u_logits.tolist(),
        "cfg": {str(gm): pai_cfg(c_logits, u_logits, gm).tolist() for gm in (1.0, 1.1, 2.0)},
    }
    golden = {
        "pai": pai,
        "fastv": fastv,
        "vcd": {"logits": logits.tolist(), "logits_cd": logits_cd.tolist(), "cases": cases},
        "noise": {"pixels": pixels.tolist(), "noise": noise.tolist(), "noised": noised},
        "knockout": {"scores": scores.tolist(), "image": [2, 6], "from": 6, "probs": probs.tolist()},
    }
    (HERE / "goldens.json").write_text(json.dumps(golden))


if __name__ == "__main__":
    main()
