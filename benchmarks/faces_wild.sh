#!/usr/bin/env bash
# Men <-> women on photos framed as people frame them, with the faces recipe's model
# (benchmarks/faces_quality.sh). The test crops of ../shared/data/faces are placed into 320 px
# photos (benchmarks/wild_photos.py: 0.45-0.8 of the frame, +-20 degrees, a random place, varied
# backgrounds), then translated (i) as they are, (ii) with inference.py --align_faces (judged on
# the whole output photo), and (iii) the aligned test crops themselves. Prints one JSON line:
# per case the independent judge's flipped rate and face rate, and for (i) and (ii) how much the
# pixels outside the face boxes changed (mean absolute difference, 0-255); and, as the judge's
# own ceiling in each framing, how often it recognises the real gender of the untranslated photos
# and of the untranslated test crops at the model's size.
#   bash benchmarks/faces_wild.sh       # MODELS=/tmp/faces_quality (man2woman, woman2man, run)
# Knobs: FACES=../shared/data/faces WORK=/tmp/faces_wild SIZE=320 SEED=0.
set -euo pipefail
cd "$(dirname "$0")/.."
FACES=${FACES:-../shared/data/faces}
MODELS=${MODELS:-/tmp/faces_quality}
WORK=${WORK:-/tmp/faces_wild}
SIZE=${SIZE:-320}
SEED=${SEED:-0}
PY=${PYTHON:-.venv/bin/python}
JUDGE=${JUDGE:-../shared/tools/gender_judge.sh}
export TF_CPP_MIN_LOG_LEVEL=3
for model in man2woman woman2man; do
  [ -d "$MODELS/$model" ] || { echo "no $MODELS/$model: run benchmarks/faces_quality.sh first" >&2; exit 2; }
done
# A model exported before it had a face layout: measure it from its training crops.
[ -f "$MODELS/run/face_layout.json" ] || "$PY" -m cyclegan_tf.faces layout \
  --images "$MODELS/men.tfrecords" --model "$MODELS/run" >&2
for model in man2woman woman2man; do
  [ -f "$MODELS/$model/assets.extra/face_layout.json" ] \
    || cp "$MODELS/run/face_layout.json" "$MODELS/$model/assets.extra/"
done
if [ -e "$WORK" ] && [ ! -f "$WORK/.faces_wild" ]; then  # only ever remove our own folder
  echo "WORK=$WORK exists and was not made by this script: give another WORK" >&2; exit 2
fi
rm -rf "$WORK"
mkdir -p "$WORK"
touch "$WORK/.faces_wild"
start=$(date +%s)
declare -A expect=([testA]=female [testB]=male)
declare -A model=([testA]=man2woman [testB]=woman2man)
declare -A real=([testA]=male [testB]=female)
for half in testA testB; do
  "$PY" benchmarks/wild_photos.py make --crops "$FACES/$half" --photos "$WORK/photos_$half" \
    --size "$SIZE" --seed "$SEED"
  m="$MODELS/${model[$half]}"
  "$PY" inference.py --model "$m" --input "$WORK/photos_$half" --output "$WORK/as_is_$half" >&2
  "$PY" inference.py --model "$m" --input "$WORK/photos_$half" --output "$WORK/aligned_$half" \
    --align_faces --keep_faceless --crops "$WORK/aligned_pairs_$half" > "$WORK/align_$half.log"
  "$PY" benchmarks/wild_photos.py halves --pairs "$WORK/aligned_pairs_$half" \
    --out "$WORK/aligned_faces_$half"
  "$PY" benchmarks/wild_photos.py realign --model "$m" --photos "$WORK/aligned_$half" \
    --out "$WORK/aligned_realigned_$half"
  "$PY" inference.py --model "$m" --input "$FACES/$half" --output "$WORK/crops_$half" \
    --image_size 64 >&2
  for case in as_is aligned crops aligned_faces aligned_realigned; do
    rm -f "$WORK/${case}_$half/boxes.json"
    bash "$JUDGE" "$WORK/${case}_$half" --expect "${expect[$half]}" --detect | tail -1 \
      > "$WORK/judge_${case}_$half.json"
  done
  # The judge on the real faces, untranslated: in the photos, and as 64 px crops.
  mkdir -p "$WORK/real_photos_$half" "$WORK/real_crops_$half"
  cp "$WORK/photos_$half"/*.png "$WORK/real_photos_$half/"
  "$PY" benchmarks/wild_photos.py realign --model "$m" --photos "$WORK/photos_$half" \
    --out "$WORK/real_photos_realigned_$half"
  "$PY" - "$FACES/$half" "$WORK/real_crops_$half" <<'PY'
import os, sys
from PIL import Image
source, target = sys.argv[1:]
for name in sorted(os.listdir(source)):
    Image.open(os.path.join(source, name)).convert("RGB").resize((64, 64), Image.LANCZOS).save(
        os.path.join(target, os.path.splitext(name)[0] + ".png"))
PY
  for case in real_photos real_crops real_photos_realigned; do
    bash "$JUDGE" "$WORK/${case}_$half" --expect "${real[$half]}" --detect | tail -1 \
      > "$WORK/judge_${case}_$half.json"
  done
  for case in as_is aligned; do
    "$PY" benchmarks/wild_photos.py outside --photos "$WORK/photos_$half" \
      --outputs "$WORK/${case}_$half" > "$WORK/outside_${case}_$half.json"
  done
done
end=$(date +%s)
"$PY" - "$WORK" "$((end - start))" <<'EOF'
import json, sys
work, seconds = sys.argv[1], int(sys.argv[2])
load = lambda name: json.loads(open(f"{work}/{name}.json").read().strip().splitlines()[-1])
result = {"case": "faces_wild"}
for case in ("as_is", "aligned", "crops", "aligned_faces", "aligned_realigned"):
    judged = [load(f"judge_{case}_{half}") for half in ("testA", "testB")]
    images = sum(j["images"] for j in judged)
    result[case] = {
        "images": images,
        "flipped": round(sum(j["expected_rate"] * j["images"] for j in judged) / images, 4),
        "face_rate": round(sum(j["face_rate"] * j["images"] for j in judged) / images, 4),
        "flipped_testA_to_female": judged[0]["expected_rate"],
        "flipped_testB_to_male": judged[1]["expected_rate"]}
    if case in ("as_is", "aligned"):
        outside = [load(f"outside_{case}_{half}") for half in ("testA", "testB")]
        result[case]["outside_mean_abs_diff"] = round(
            sum(o["outside_mean_abs_diff"] * o["photos"] for o in outside)
            / sum(o["photos"] for o in outside), 4)
import re
faceless = 0
for half in ("testA", "testB"):
    found = re.search(r"(\d+) photos without a face found", open(f"{work}/align_{half}.log").read())
    faceless += int(found.group(1)) if found else 0
result["aligned"]["photos_without_a_face_found"] = faceless
# The judge's ceiling in each framing: real faces, their real gender.
for case in ("real_photos", "real_crops", "real_photos_realigned"):
    judged = [load(f"judge_{case}_{half}") for half in ("testA", "testB")]
    images = sum(j["images"] for j in judged)
    result[f"judge_on_{case}"] = {
        "recognised": round(sum(j["expected_rate"] * j["images"] for j in judged) / images, 4),
        "face_rate": round(sum(j["face_rate"] * j["images"] for j in judged) / images, 4)}
result["wall_seconds"] = seconds
print(json.dumps(result))
EOF
