#!/usr/bin/env bash
# FID/KID and face rate of a trained generator at several truncations, as faces_generate.sh scores
# its end: FINAL_SEEDS=8 sets of FINAL_SAMPLES=5000 samples against the 5000 training crops, and
# the share of 500 samples (inference.py --seed 1) in which the independent detector finds a face.
# Truncation trades variety for typical images (StyleGAN: w pulled toward w_avg; DCGAN, WGAN-GP:
# z scaled), so it can move FID either way: this measures where each model is best.
#   WORK=/tmp/faces_generate MODEL=stylegan bash benchmarks/faces_truncation.sh 1 0.9 0.8 0.7
# WORK is a folder faces_generate.sh filled (its tfrecords, run_MODEL and the export MODEL);
# prints one JSON line per truncation. STEPS: the checkpoint scored (default: the run's last).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:?WORK: a folder that benchmarks/faces_generate.sh filled}
MODEL=${MODEL:-dcgan}
PY=${PYTHON:-.venv/bin/python}
JUDGE=${JUDGE:-../shared/tools/gender_judge.sh}
FID_NETWORK=${FID_NETWORK:-face}
STEPS=${STEPS:-$("$PY" -c "import sys, tensorflow as tf; print(tf.train.latest_checkpoint(sys.argv[1]).rsplit('-', 1)[1])" "$WORK/run_$MODEL")}
[ $# -gt 0 ] || { echo "give the truncations to score, e.g. 1 0.9 0.8 0.7" >&2; exit 2; }

for psi in "$@"; do
  start=$(date +%s)
  out="$WORK/truncation_$MODEL/$psi"
  mkdir -p "$out"
  "$PY" evaluate.py --checkpoint_dir "$WORK/run_$MODEL" --step "$STEPS" --X "$WORK/faces_*.tfrecords" \
    --num "${FINAL_SAMPLES:-5000}" --sample_sets "${FINAL_SEEDS:-8}" --truncation "$psi" \
    --fid_network "$FID_NETWORK" --batch_size 64 --output_dir "$out/scores" | tail -1 > "$out/scores.json"
  "$PY" inference.py --model "$WORK/$MODEL" --num 500 --seed 1 --truncation "$psi" \
    --output "$out/samples/" >&2
  judged=$(bash "$JUDGE" "$out/samples" --detect | tail -1)
  "$PY" - "$out/scores.json" "$judged" "$MODEL" "$STEPS" "$psi" "$WORK" "$(($(date +%s) - start))" <<'EOF'
import json, sys
scores_file, judged, model, steps, psi, work, seconds = sys.argv[1:]
scores, judge = json.load(open(scores_file)), json.loads(judged)


def mean_and_error(name: str, digits: int) -> list[float | None]:
    error = scores.get(f"{name}_error")
    return [round(scores[name], digits), error and round(error, digits)]


print(json.dumps({"model": model, "work": work, "step": int(steps), "truncation": float(psi),
                  "samples": scores["num_samples"], "seeds": scores.get("sample_sets", 1),
                  "fid_mean_and_error": mean_and_error("fid", 4),
                  "kid_mean_and_error": mean_and_error("kid", 6),
                  "feature_network": scores["feature_network"],
                  "face_rate": judge["face_rate"], "face_rate_samples": judge["images"],
                  "seconds": int(seconds)}))
EOF
done
