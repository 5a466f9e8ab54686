#!/usr/bin/env bash
# New faces from noise, end to end as a user runs it: build_data (one domain) -> train.py --model
# dcgan|wgangp (64 px) -> export_graph --generator_model -> inference (500 samples) -> an
# independent face detector. Prints one JSON line: the face rate of the samples and the wall time.
#   bash benchmarks/faces_generate.sh            # FACES=../shared/data/faces WORK=/tmp/faces_generate
# Knobs (environment): MODEL=dcgan (or wgangp) STEPS=4000 SIZE=64 NGF=64 NDF=64 BATCH=64
# PRECISION=auto (bf16 where the CPU computes it natively) SAMPLES=500. The training set is all
# of trainA + trainB (5000 crops). Rerunning with the same WORK resumes the training.
# Not measured by this script yet: FID/KID at several points of the run (issue #12).
set -euo pipefail
cd "$(dirname "$0")/.."
FACES=${FACES:-../shared/data/faces}
WORK=${WORK:-/tmp/faces_generate}
MODEL=${MODEL:-dcgan}
SIZE=${SIZE:-64}
STEPS=${STEPS:-4000}
NGF=${NGF:-64}
NDF=${NDF:-64}
BATCH=${BATCH:-64}
SAMPLES=${SAMPLES:-500}
PRECISION=${PRECISION:-auto}
if [ "$PRECISION" = auto ]; then
  PRECISION=off
  grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null && PRECISION=bf16
fi
PY=${PYTHON:-.venv/bin/python}
JUDGE=${JUDGE:-../shared/tools/gender_judge.sh}
mkdir -p "$WORK"
start=$(date +%s)

for half in trainA trainB; do  # one domain from two folders: two files, read together by a glob
  [ -f "$WORK/faces_$half.tfrecords" ] || "$PY" build_data.py --X_input_dir "$FACES/$half" \
    --X_output_file "$WORK/faces_$half.tfrecords" --image_size "$SIZE" >&2
done
"$PY" train.py --model "$MODEL" --X "$WORK/faces_*.tfrecords" --checkpoint_dir "$WORK/run_$MODEL" \
  --image_size "$SIZE" --ngf "$NGF" --ndf "$NDF" --batch_size "$BATCH" --max_steps "$STEPS" \
  --mixed_precision "$PRECISION" --save_every 500 --summary_every 250 --log_every 250 >&2
"$PY" export_graph.py --checkpoint_dir "$WORK/run_$MODEL" --generator_model "$WORK/$MODEL" >&2
"$PY" inference.py --model "$WORK/$MODEL" --num "$SAMPLES" --seed 1 --output "$WORK/samples_$MODEL/" >&2
"$PY" inference.py --model "$WORK/$MODEL" --num 64 --seed 1 --output "$WORK/grid_$MODEL.png" >&2
judged=$(bash "$JUDGE" "$WORK/samples_$MODEL" --detect)
end=$(date +%s)
"$PY" - "$judged" "$MODEL" "$STEPS" "$PRECISION" "$((end - start))" <<'EOF'
import json, sys
judged, model, steps, precision, seconds = sys.argv[1:]
judge = json.loads(judged.strip().splitlines()[-1])
print(json.dumps({"model": model, "steps": int(steps), "precision": precision,
                  "samples": judge["images"], "face_rate": judge["face_rate"],
                  "wall_seconds": int(seconds)}))
EOF
