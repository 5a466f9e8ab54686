#!/usr/bin/env bash
# New faces from noise, end to end as a user runs it: build_data (one domain) -> train.py --model
# dcgan|wgangp|stylegan (64 px) -> evaluate.py (FID/KID at POINTS checkpoints along the run) ->
# export_graph --generator_model -> inference (500 samples) -> an independent face detector ->
# evaluate.py again at the end, with more samples and several seeds.
# Prints one JSON line: the face rate of the samples, FID/KID along the run and at the end, the
# times.
#   bash benchmarks/faces_generate.sh            # FACES=../shared/data/faces WORK=/tmp/faces_generate
# Knobs (environment): MODEL=dcgan (or wgangp, stylegan) STEPS=4000 SIZE=64 NGF=64 NDF=64 BATCH=64
# PRECISION=auto (bf16 where the CPU computes it natively) SAMPLES=500 POINTS=5 TRAIN_FLAGS=
# (more train.py flags, e.g. "--channel_base 1024"). The training set is all of trainA + trainB
# (5000 crops), and FID/KID compare 500 samples with all of it along the run; at the end, FINAL_SEEDS=8
# sets of FINAL_SAMPLES=5000 samples (as many as the crops) give FID/KID's mean and standard error,
# which separate runs that 500 samples cannot (FINAL_SEEDS=0 skips them).
# FID_WEIGHTS=classify_image_graph_def.pb (or inception-2015-12-05.tgz) gives the standard FID;
# without it, FID_NETWORK=inception uses Keras' InceptionV3 (downloaded), and the default, face,
# MTCNN's face network, which needs no download but is not FID (see cyclegan_tf/features.py).
# Rerunning with the same WORK resumes the training.
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
POINTS=${POINTS:-5}
PRECISION=${PRECISION:-auto}
FID_WEIGHTS=${FID_WEIGHTS:-}
FID_NETWORK=${FID_NETWORK:-$([ -n "$FID_WEIGHTS" ] && echo inception || echo face)}
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
# POINTS checkpoints along the run are kept, for FID/KID along it.
train_start=$(date +%s)
"$PY" train.py --model "$MODEL" --X "$WORK/faces_*.tfrecords" --checkpoint_dir "$WORK/run_$MODEL" \
  --image_size "$SIZE" --ngf "$NGF" --ndf "$NDF" --batch_size "$BATCH" --max_steps "$STEPS" \
  --mixed_precision "$PRECISION" --save_every $((STEPS / POINTS)) --keep_checkpoints $((POINTS + 1)) \
  --summary_every 250 --log_every 50 ${TRAIN_FLAGS:-} >&2
# The training time of the run that trained it (a rerun only finds it finished).
[ -f "$WORK/run_$MODEL/train_seconds" ] || echo $(($(date +%s) - train_start)) > "$WORK/run_$MODEL/train_seconds"
mkdir -p "$WORK/evaluation_$MODEL"
points=$(seq $((STEPS / POINTS)) $((STEPS / POINTS)) "$STEPS")
for step in $points; do
  "$PY" evaluate.py --checkpoint_dir "$WORK/run_$MODEL" --step "$step" --X "$WORK/faces_*.tfrecords" \
    --num "$SAMPLES" --fid_network "$FID_NETWORK" ${FID_WEIGHTS:+--fid_weights "$FID_WEIGHTS"} \
    --batch_size 64 --output_dir "$WORK/evaluation_$MODEL/$step" | tail -1 > "$WORK/evaluation_$MODEL/$step.json"
done
"$PY" export_graph.py --checkpoint_dir "$WORK/run_$MODEL" --generator_model "$WORK/$MODEL" >&2
"$PY" inference.py --model "$WORK/$MODEL" --num "$SAMPLES" --seed 1 --output "$WORK/samples_$MODEL/" >&2
"$PY" inference.py --model "$WORK/$MODEL" --num 64 --seed 1 --output "$WORK/grid_$MODEL.png" >&2
judged=$(bash "$JUDGE" "$WORK/samples_$MODEL" --detect)
end=$(date +%s)
final_sets=${FINAL_SEEDS:-8}
end_start=$(date +%s)
if [ "$final_sets" -gt 0 ]; then  # not in wall_seconds, which stays comparable with earlier runs
  "$PY" evaluate.py --checkpoint_dir "$WORK/run_$MODEL" --step "$STEPS" --X "$WORK/faces_*.tfrecords" \
    --num "${FINAL_SAMPLES:-5000}" --sample_sets "$final_sets" --fid_network "$FID_NETWORK" \
    ${FID_WEIGHTS:+--fid_weights "$FID_WEIGHTS"} --batch_size 64 \
    --output_dir "$WORK/evaluation_$MODEL/final" | tail -1 > "$WORK/evaluation_$MODEL/final.json"
fi
"$PY" - "$judged" "$MODEL" "$STEPS" "$PRECISION" "$((end - start))" "$WORK" "${TRAIN_FLAGS:-}" \
  "$BATCH" "$points" "$final_sets" "${FINAL_SAMPLES:-5000}" "$(($(date +%s) - end_start))" <<'EOF'
import json, sys
(judged, model, steps, precision, seconds, work, train_flags, batch, steps_scored, final_sets,
 final_samples, end_seconds) = sys.argv[1:]
judge = json.loads(judged.strip().splitlines()[-1])
# This run's points only: an earlier, interrupted run in the same WORK may have left others.
points = [json.load(open(f"{work}/evaluation_{model}/{step}.json")) | {"step": int(step)}
          for step in steps_scored.split()]
with open(f"{work}/run_{model}/train_seconds") as f:
    train_seconds = int(f.read())
final = json.load(open(f"{work}/evaluation_{model}/final.json")) if int(final_sets) > 0 else None


def mean_and_error(name: str, digits: int) -> list[float | None]:
    """The mean and its standard error over the sample sets (None for one set)."""
    error = final.get(f"{name}_error")
    return [round(final[name], digits), error and round(error, digits)]


end = {"fid_kid_end": {"samples": int(final_samples), "seeds": int(final_sets),
                       "fid_per_seed": [round(f, 4) for f in final.get("fid_per_set",
                                                                       [final["fid"]])],
                       "fid_mean_and_error": mean_and_error("fid", 4),
                       "kid_mean_and_error": mean_and_error("kid", 6),
                       "seconds": int(end_seconds)}
       } if final else {}
print(json.dumps({"model": model, "steps": int(steps), "batch": int(batch), "precision": precision,
                  **({"train_flags": train_flags} if train_flags else {}),
                  "samples": judge["images"], "face_rate": judge["face_rate"],
                  "feature_network": points[-1]["feature_network"],
                  "fid_kid_along_run": [[p["step"], round(p["fid"], 4), round(p["kid"], 5)]
                                        for p in points], **end,
                  "train_seconds": train_seconds, "wall_seconds": int(seconds)}))
EOF
