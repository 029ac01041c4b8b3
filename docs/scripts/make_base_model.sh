#!/usr/bin/env bash
# Rebuild the shipped base model, src/napari_zfocus/resources/base_model.zfm: the compact CNN
# (the default network when it was made) at 0.6 um/px over a 60 um field, trained on 240
# stacks of the simulator's broad preset with photometric augmentation. On the project's
# 2-core machine: ~12 min of simulation, then 6200 training steps (~2000 CPU s: the CPU
# time of the 12000 paper-CNN steps the first base model got).
#
# Then the feature network's base (base_features_model.zfm, `--from base-features`) on the
# same stacks: 1800 steps (~770 s), at 0.24 um/px (the feature network's default is 0.48 now).
#
#   bash docs/scripts/make_base_model.sh [WORK_DIR]
set -euo pipefail
work=${1:-_scratch/base_model}
zfocus simulate "$work/broad240" --preset broad --stacks 240 --seed 50000 --quiet
zfocus train "$work/broad240" --out "$work/base_full.zfm" --steps 6200 --photometric-augment \
    --architecture compact_cnn
python docs/scripts/make_base_model.py "$work/base_full.zfm"
zfocus train "$work/broad240" --out "$work/base_features_full.zfm" --steps 1800 \
    --architecture feature_mlp --pixel-size-um 0.24
python docs/scripts/make_base_model.py "$work/base_features_full.zfm" \
    --out src/napari_zfocus/resources/base_features_model.zfm
