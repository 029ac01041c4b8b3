#!/usr/bin/env bash
# Rebuild the shipped base model, src/napari_zfocus/resources/base_model.zfm: the paper CNN
# at its CPU-budget input (1.2 um/px over a 60 um field, batch-norm), trained on 240
# stacks of the simulator's broad preset with photometric augmentation. On the project's
# 2-core machine: ~12 min of simulation, then 12000 training steps (~25 min idle).
#
#   bash docs/scripts/make_base_model.sh [WORK_DIR]
set -euo pipefail
work=${1:-_scratch/base_model}
zfocus simulate "$work/broad240" --preset broad --stacks 240 --seed 50000 --quiet
zfocus train "$work/broad240" --out "$work/base_full.zfm" --steps 12000 --photometric-augment \
    --architecture paper_cnn
python docs/scripts/make_base_model.py "$work/base_full.zfm"
