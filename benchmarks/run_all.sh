#!/usr/bin/env bash
# Every number in the README's Benchmarks section, measured in one go on a quiet machine.
# Usage: bash benchmarks/run_all.sh [OUT_DIR]   (about 75 minutes on 2 CPU cores)
# Results (JSON lines and logs) go to OUT_DIR (default _scratch/benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-_scratch/benchmarks}
mkdir -p "$out"
py=${PYTHON:-python}
log() { echo "== $* (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$out/log.txt"; }

log "simulator speed"
$py benchmarks/bench_simulator.py --repeats 5 2>&1 | tee "$out/simulator.txt"

log "in-focus suggestion on 30 held-out simulated stacks"
$py benchmarks/bench_suggest.py --n 30 --seed 1000 --json "$out/suggest.json" 2>&1 | tee "$out/suggest.txt"

log "accuracy: 10-minute zfocus train on 80 simulated stacks, test on 30 others"
$py benchmarks/bench_accuracy.py --minutes 10 --out "$out/model.zfm" 2>&1 | tee "$out/accuracy.txt"
zfocus eval "$out/model.zfm" _scratch/sim_test30 --json --baselines --plots "$out/eval" 2>/dev/null \
  | tail -n 1 > "$out/eval.json"

log "what the errors follow: per-stack slope of predicted vs true z against the annotation columns"
$py benchmarks/error_by_stack.py "$out/model.zfm" _scratch/sim_test30 | tee "$out/error_by_stack.txt"

log "the same 10-minute training at other pixel sizes (README table)"
for px in 0.48 0.72 0.96; do
  $py benchmarks/bench_accuracy.py --minutes 10 --out "$out/model_px$px.zfm" -- --pixel-size-um "$px" \
    2>&1 | tee "$out/accuracy_px$px.txt"
done

log "one condenser aperture (NA 0.38) in training and test stacks, same steps as the 10-minute run"
zfocus simulate _scratch/sim_train80_na038 --stacks 80 --seed 1 --condenser-na 0.38 --quiet --overwrite
zfocus simulate _scratch/sim_test30_na038 --stacks 30 --seed 2 --condenser-na 0.38 --quiet --overwrite
steps=$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['train']['steps'])" \
  <(sed -n '/^{/,/^}/p' "$out/accuracy.txt"))
$py benchmarks/bench_accuracy.py --minutes 60 --train-dir _scratch/sim_train80_na038 \
  --test-dir _scratch/sim_test30_na038 --out "$out/model_na038.zfm" -- --steps "$steps" \
  2>&1 | tee "$out/accuracy_na038.txt"
$py benchmarks/bench_accuracy.py --evaluate-only --out "$out/model_na038.zfm" \
  2>&1 | tee "$out/accuracy_na038_on_mixed_na.txt"

log "live path speed: trained model and the paper-default CNN (0.24 um/px, 250 px)"
zfocus bench "$out/model.zfm" --json | tail -n 1 > "$out/bench_model.json"
$py - "$out/paper_cnn.zfm" <<'PY'
import sys
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network
cfg = ModelConfig()
save_model(sys.argv[1], build_network(cfg), cfg, {"note": "untrained, for speed only"})
PY
zfocus bench "$out/paper_cnn.zfm" --json | tail -n 1 > "$out/bench_paper_cnn.json"
zfocus bench "$out/paper_cnn.zfm" --json --compile | tail -n 1 > "$out/bench_paper_cnn_compile.json"

log "the paper's 24 h experiment in simulation (shipped demo model, two scenes)"
# The demo model itself is rebuilt by docs/scripts/make_demo_model.sh (~35 min), not here.
for seed in 0 1; do
  zfocus live --simulate --hours 24 --drift-um 40 --json --seed "$seed" \
    --csv "$out/live24h_seed$seed.csv" | tail -n 1 > "$out/live24h_seed$seed.json"
done

log "autofocus inside a 24 h, 4-position MDA: one CNN frame vs a z-scan vs none (same plate)"
$py benchmarks/bench_acquire.py 2>&1 | tee "$out/acquire24h.txt"

log "the scan baseline alone: contrast dip vs sharpness, 30 starts within +/-8 um"
$py benchmarks/bench_scan_focus.py --n 30 --seed 3000 2>&1 | tee "$out/scan_focus.txt"

log "live loop with the GUI running (Xvfb), 3 runs"
for run in 1 2 3; do
  xvfb-run -a -s "-screen 0 1600x1000x24" $py benchmarks/bench_live_gui.py --seconds 20 \
    --model src/napari_zfocus/resources/demo_model.zfm 2>&1 | tail -n 1
done | tee "$out/live_gui.txt"
log "done"
