#!/usr/bin/env bash
# Man <-> woman on real face crops, end to end as a user runs it, in about an hour of a 2-core CPU:
# build_data -> train (64 px) -> export_graph -> evaluate (translates testA/testB) -> an independent
# gender judge. Prints one JSON line: judge rates of G(testA) -> female and F(testB) -> male, face
# detection rates, cycle L1 (images in [-1, 1]), the wall time, and how far each translation is
# from its input as a person (person_G / person_F: benchmarks/face_identity.sh, dlib's
# face-recognition distance, under 0.6 = the same person; its first run installs dlib and 100 MB
# of its models in a venv of its own).
#   bash benchmarks/faces_quality.sh                 # FACES=../shared/data/faces WORK=/tmp/faces_quality
# Knobs (environment): SIZE=64 NGF=32 NDF=64 BLOCKS=6 LAMBDA=10 (both cycles) LAMBDA_ID=0.1
# INPUT_SKIP=1 (0: the paper's generator) LOAD_SIZE=$SIZE (the crops are aligned: flips only, no
# random crop) PRECISION=auto (bf16 where the CPU has AVX512-BF16 or AMX instructions, else off)
# STEPS=16000 in bf16, 12000 in fp32 (about the same hour here) FID=0 (1: also FID/KID, which
# needs the Keras InceptionV3 weights) JITTER="SCALE SHIFT DEGREES" (e.g. "0.05 0.03 5": a mild
# random scale / shift / rotation of the training crops, for photos aligned with small errors;
# default "0 0 0"). Rerunning with the same WORK resumes the training.
set -euo pipefail
cd "$(dirname "$0")/.."
FACES=${FACES:-../shared/data/faces}
WORK=${WORK:-/tmp/faces_quality}
SIZE=${SIZE:-64}
PRECISION=${PRECISION:-auto}
if [ "$PRECISION" = auto ]; then
  # Emulated bf16 is slower than fp32: use it only where the CPU computes it natively.
  PRECISION=off
  grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null && PRECISION=bf16
fi
STEPS=${STEPS:-$([ "$PRECISION" = bf16 ] && echo 16000 || echo 12000)}
NGF=${NGF:-32}
NDF=${NDF:-64}
BLOCKS=${BLOCKS:-6}
LAMBDA=${LAMBDA:-10}
LAMBDA_ID=${LAMBDA_ID:-0.1}
INPUT_SKIP=${INPUT_SKIP:-1}
LOAD_SIZE=${LOAD_SIZE:-$SIZE}
read -r JITTER_SCALE JITTER_SHIFT JITTER_DEGREES <<< "${JITTER:-0 0 0}"
PY=${PYTHON:-.venv/bin/python}
JUDGE=${JUDGE:-../shared/tools/gender_judge.sh}
export TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$WORK"
start=$(date +%s)

if [ ! -f "$WORK/men.tfrecords" ] || [ ! -f "$WORK/women.tfrecords" ]; then
  # Stored at the training load size (1.12 x SIZE): decoding and resizing stay cheap.
  "$PY" build_data.py --X_input_dir "$FACES/trainA" --Y_input_dir "$FACES/trainB" \
    --X_output_file "$WORK/men.tfrecords" --Y_output_file "$WORK/women.tfrecords" \
    --image_size $((SIZE * 112 / 100)) >&2
fi
"$PY" train.py --X "$WORK/men.tfrecords" --Y "$WORK/women.tfrecords" --checkpoint_dir "$WORK/run" \
  --image_size "$SIZE" --ngf "$NGF" --ndf "$NDF" --n_blocks "$BLOCKS" --max_steps "$STEPS" \
  --lambda1 "$LAMBDA" --lambda2 "$LAMBDA" --lambda_identity "$LAMBDA_ID" --load_size "$LOAD_SIZE" \
  --mixed_precision "$PRECISION" "--$([ "$INPUT_SKIP" = 1 ] || echo no)input_skip" \
  --jitter_scale "$JITTER_SCALE" --jitter_shift "$JITTER_SHIFT" --jitter_degrees "$JITTER_DEGREES" \
  --save_every 1000 --summary_every 500 --log_every 500 >&2
"$PY" export_graph.py --checkpoint_dir "$WORK/run" --XtoY_model "$WORK/man2woman" \
  --YtoX_model "$WORK/woman2man" >&2
fid_flag=--nofid
[ "${FID:-0}" = 1 ] && fid_flag=--fid
"$PY" evaluate.py --XtoY_model "$WORK/man2woman" --YtoX_model "$WORK/woman2man" \
  --X "$FACES/testA" --Y "$FACES/testB" --image_size "$SIZE" --output_dir "$WORK/eval" \
  "$fid_flag" > "$WORK/metrics.json"
"$JUDGE" "$WORK/eval/XtoY" --expect female --detect > "$WORK/judge_XtoY.json"
"$JUDGE" "$WORK/eval/YtoX" --expect male --detect > "$WORK/judge_YtoX.json"
end=$(date +%s)
# As a person (not in wall_seconds; a failure leaves it out).
for direction in XtoY YtoX; do
  inputs=$([ $direction = XtoY ] && echo testA || echo testB)
  bash benchmarks/face_identity.sh "$FACES/$inputs" "$WORK/eval/$direction" \
    > "$WORK/person_$direction.json" || : > "$WORK/person_$direction.json"
done

"$PY" - "$WORK" "$((end - start))" "$SIZE" "$STEPS" "$NGF" "$NDF" "$BLOCKS" "$LOAD_SIZE" "$INPUT_SKIP" \
  "$LAMBDA" "$LAMBDA_ID" "$PRECISION" "$JITTER_SCALE $JITTER_SHIFT $JITTER_DEGREES" <<'PY'
import json, sys
work, seconds, size, steps, ngf, ndf, blocks, load_size, input_skip = sys.argv[1], *map(int, sys.argv[2:10])
lambda_cycle, lambda_identity, precision = float(sys.argv[10]), float(sys.argv[11]), sys.argv[12]
metrics = json.loads(open(f"{work}/metrics.json").read().strip().splitlines()[-1])
to_female = json.loads(open(f"{work}/judge_XtoY.json").read().strip().splitlines()[-1])
to_male = json.loads(open(f"{work}/judge_YtoX.json").read().strip().splitlines()[-1])
person = {d: json.loads((open(f"{work}/person_{d}.json").read().strip().splitlines() or ["null"])[-1])
          for d in ("XtoY", "YtoX")}
result = {
    "case": "faces_quality", "size": size, "steps": steps, "ngf": ngf, "ndf": ndf, "blocks": blocks,
    "input_skip": bool(input_skip), "load_size": load_size, "lambda_cycle": lambda_cycle,
    "lambda_identity": lambda_identity, "mixed_precision": precision,
    "jitter_scale_shift_degrees": [float(v) for v in sys.argv[13].split()],
    "G_testA_judged_female": to_female["expected_rate"], "F_testB_judged_male": to_male["expected_rate"],
    "face_rate_G": to_female["face_rate"], "face_rate_F": to_male["face_rate"],
    "cycle_l1_X": round(metrics["cycle_l1_X"], 4), "cycle_l1_Y": round(metrics["cycle_l1_Y"], 4),
    "identity_l1_G": round(metrics["identity_l1_G"], 4), "identity_l1_F": round(metrics["identity_l1_F"], 4),
    "person_G": person["XtoY"], "person_F": person["YtoX"],
    "wall_seconds": seconds,
}
result.update({k: round(v, 4) for k, v in metrics.items() if k.startswith(("fid_", "kid_"))})
print(json.dumps(result))
PY
