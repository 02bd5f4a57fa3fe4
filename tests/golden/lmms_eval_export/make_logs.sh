#!/usr/bin/env bash
# lmms-eval's own sample logs of the task `mmdiag export` writes, answered by the reference model (the golden input of
# tests/test_answers_audit.py::test_lmms_eval_own_sample_logs_give_the_audit_with_weights). Run from the repository
# root; lmms-eval goes into its own virtual environment (it needs datasets, decord and a filelock with _api):
#
#   python -m venv --system-site-packages /tmp/lmmsvenv
#   /tmp/lmmsvenv/bin/pip install lmms-eval==0.7.3 decord "filelock<3.20"
#
# lmms-eval's llava_hf model prompts through the processor's chat template, which the reference model does not
# ship: a copy gets LLaVA-1.5's ("USER: <image>\n{question} ASSISTANT:", llava-1.5.jinja here), the prompt mmdiag
# uses for LLaVA.
set -euo pipefail
here=tests/golden/lmms_eval_export
work=$(mktemp -d)
model=$(python -c "from mmdiag.api import default_model_dir; print(default_model_dir())")
cp -r "$model" "$work/model" && cp "$here/llava-1.5.jinja" "$work/model/chat_template.jinja"
HF_HUB_OFFLINE=1 mmdiag export --out "$work/export" --suite quick --n-examples 8
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 /tmp/lmmsvenv/bin/python -m lmms_eval --model llava_hf \
    --model_args "pretrained=$work/model,device=cpu,device_map=cpu,dtype=float32" \
    --include_path "$work/export/lmms-eval" --tasks mmdiag_audit --log_samples --output_path "$work/logs" --batch_size 1
rm -f "$here"/*_samples_mmdiag_audit_*.jsonl
cp "$work"/logs/*/*_samples_mmdiag_audit_*.jsonl "$here/"
