#!/usr/bin/env bash
# StyleGAN on real faces, end to end as a user runs it. Prints JSON lines:
#  (a) generation: benchmarks/faces_generate.sh with MODEL=stylegan (5000 crops, 64 px, FID/KID
#      at POINTS checkpoints, the judge's face rate of 500 samples); compare with the DCGAN /
#      WGAN-GP lines of the same script at the same wall time (benchmarks/README.md);
#  (b) gender swap by latent editing: a direction learned from the men and women of
#      trainA/trainB (inference.py --learn_direction, METHOD: a classifier of the two folders
#      labelling generated faces, or the folders' projections), then the 250 + 250 test faces
#      projected and edited (--edit gender --edit_method EDIT_METHOD, at most +STRENGTH for men,
#      -STRENGTH for women, each face until the direction's classifier is CONFIDENCE sure) and
#      judged: flipped rate, face rate, how close each projection came to its face (the
#      projector's distance), how far each output is from its input (mean absolute difference
#      at 64 px, 0-255), the mean
#      strength used, and how far each output is from its input as a person (person_*:
#      benchmarks/face_identity.sh, dlib's face-recognition distance, under 0.6 = the same
#      person; its first run installs dlib and 100 MB of its models in a venv of its own).
#      The CycleGAN recipe's figures for the same faces: faces_quality.sh;
#  (c) the same edits on the first WILD test faces of each half placed into ordinary photos
#      (benchmarks/wild_photos.py), with --align_faces, judged on the whole photo.
#   bash benchmarks/faces_stylegan.sh        # FACES=../shared/data/faces WORK=/tmp/faces_stylegan
# Knobs (environment): STEPS=4000 NGF=256 NDF=256 BATCH=32 POINTS=4 TRAIN_FLAGS= (passed to
# faces_generate.sh)
# METHOD=classifier LIMIT=0 (images per folder; 0: the method's default) PROJECT_STEPS=200
# SPACE=z EDIT_METHOD=optimize STRENGTH=3 CONFIDENCE=(0.99 for optimize, 0.9 for direction: as
# inference.py) DISTANCE=auto (vgg16 when its weights are here).
# WILD=250 (0: skip (c)). MODEL_DIR=an exported StyleGAN: skip (a) and edit with it.
# Rerunning with the same WORK resumes the training (and re-exports it: a new direction); with
# MODEL_DIR it reuses that model's direction when it was learned by the same METHOD (and, for
# SPACE=z, has its z form: z projections are edited in z).
set -euo pipefail
cd "$(dirname "$0")/.."
FACES=${FACES:-../shared/data/faces}
WORK=${WORK:-/tmp/faces_stylegan}
METHOD=${METHOD:-classifier}
LIMIT=${LIMIT:-0}
PROJECT_STEPS=${PROJECT_STEPS:-200}
SPACE=${SPACE:-z}
STRENGTH=${STRENGTH:-3}
EDIT_METHOD=${EDIT_METHOD:-optimize}
CONFIDENCE=${CONFIDENCE:-$([ "$EDIT_METHOD" = optimize ] && echo 0.99 || echo 0.9)}
WILD=${WILD:-250}
DISTANCE=${DISTANCE:-auto}
PY=${PYTHON:-.venv/bin/python}
JUDGE=${JUDGE:-../shared/tools/gender_judge.sh}
export TF_CPP_MIN_LOG_LEVEL=3

# (a) generation: the generator protocol, with StyleGAN's CPU widths and batch.
model=${MODEL_DIR:-$WORK/stylegan}  # the export faces_generate.sh writes
[ -n "${MODEL_DIR:-}" ] || MODEL=stylegan STEPS=${STEPS:-4000} NGF=${NGF:-256} NDF=${NDF:-256} \
  BATCH=${BATCH:-32} POINTS=${POINTS:-4} FACES="$FACES" WORK="$WORK" \
  bash benchmarks/faces_generate.sh
mkdir -p "$WORK"

# (b) gender swap in the latent space.
start=$(date +%s)
grep -qs "\"method\": \"$METHOD\"" "$model/directions/gender.json" \
  && [ -f "$model/directions/gender.npy" ] \
  && { [ "$SPACE" != z ] || [ -f "$model/directions/gender.z.npy" ]; } \
  || "$PY" inference.py --model "$model" \
  --learn_direction gender --from_images "$FACES/trainA" --to_images "$FACES/trainB" \
  --direction_method "$METHOD" --limit "$LIMIT" --steps "$PROJECT_STEPS" --space "$SPACE" \
  --distance "$DISTANCE" > "$WORK/direction.log"
declare -A expect=([testA]=female [testB]=male) sign=([testA]=1 [testB]=-1)
for half in testA testB; do
  rm -rf "$WORK/edited_$half"
  "$PY" inference.py --model "$model" --input "$FACES/$half" --edit gender \
    --strength "$(awk "BEGIN{print ${sign[$half]} * $STRENGTH}")" --steps "$PROJECT_STEPS" \
    --space "$SPACE" --edit_method "$EDIT_METHOD" --confidence "$CONFIDENCE" \
    --distance "$DISTANCE" --output "$WORK/edited_$half/" > "$WORK/edit_$half.log"
  bash "$JUDGE" "$WORK/edited_$half" --expect "${expect[$half]}" --detect | tail -1 \
    > "$WORK/judge_edit_$half.json"
done
end=$(date +%s)
for half in testA testB; do  # as a person (not in wall_seconds; a failure leaves it out)
  bash benchmarks/face_identity.sh "$FACES/$half" "$WORK/edited_$half" > "$WORK/person_$half.json" \
    || : > "$WORK/person_$half.json"
done
"$PY" - "$WORK" "$((end - start))" "$model" "$STRENGTH" "$CONFIDENCE" "$SPACE" "$PROJECT_STEPS" \
  "$FACES" <<'EOF'
import json, os, re, statistics, sys
import numpy as np
from PIL import Image
work, seconds, model, strength, confidence, space, steps, faces = \
    sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
judged = {h: json.loads(open(f"{work}/judge_edit_{h}.json").read()) for h in ("testA", "testB")}
person = {h: (open(f"{work}/person_{h}.json").read().strip().splitlines() or ["null"])[-1]
          for h in ("testA", "testB")}
direction = json.load(open(f"{model}/directions/gender.json"))
said = open(f"{work}/edit_testA.log").read()
distances, strengths, name = [], [], ""
for half in ("testA", "testB"):
    for line in open(f"{work}/edit_{half}.log"):
        found = re.search(r": (\w+) distance ([0-9.]+)(, strength (-?[0-9.]+))?$", line.strip())
        if found and not line.startswith("projection step"):
            name = found.group(1)
            distances.append(float(found.group(2)))
            if found.group(4):
                strengths.append(abs(float(found.group(4))))

def far_from_input(half):  # each edited face against its input, both at 64 px
    inputs = {os.path.splitext(n)[0]: n for n in os.listdir(f"{faces}/{half}")}
    for name in sorted(os.listdir(f"{work}/edited_{half}")):
        a, b = (np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.LANCZOS), float)
                for path in (f"{faces}/{half}/{inputs[os.path.splitext(name)[0]]}",
                             f"{work}/edited_{half}/{name}"))
        yield np.abs(a - b).mean()


images = sum(j["images"] for j in judged.values())
print(json.dumps({
    "case": "stylegan_gender_edit", "direction": {k: direction.get(k) for k in (
        "method", "from_images", "to_images", "classifier_held_out_accuracy", "samples")},
    "space": space, "projection_steps": int(steps), "distance": name,
    # what inference.py says it ran (an optimised edit falls back without a classifier)
    "edit_method": "optimize" if "optimised until" in said else "direction",
    "edit_space": "z" if "editing in z along" in said else "w",
    "max_strength": float(strength), "confidence": float(confidence),
    "mean_strength": round(statistics.mean(strengths), 3) if strengths else None,
    "flipped": round(sum(j["expected_rate"] * j["images"] for j in judged.values()) / images, 4),
    "flipped_testA_to_female": judged["testA"]["expected_rate"],
    "flipped_testB_to_male": judged["testB"]["expected_rate"],
    "face_rate": round(sum(j["face_rate"] * j["images"] for j in judged.values()) / images, 4),
    "projection_distance_mean": round(statistics.mean(distances), 4) if distances else None,
    "input_mean_abs_diff": round(statistics.mean(
        d for half in ("testA", "testB") for d in far_from_input(half)), 2),
    "person_testA_to_female": json.loads(person["testA"]),
    "person_testB_to_male": json.loads(person["testB"]),
    "wall_seconds": seconds}))
EOF

# (c) the same edits on photos framed as people frame them: the first WILD test faces of each
#     half placed into 320 px photos (benchmarks/wild_photos.py, as faces_wild.sh does), edited
#     with --align_faces, judged on the whole photo; and the pixels outside the face boxes.
if [ "$WILD" -gt 0 ]; then
  start=$(date +%s)
  for half in testA testB; do
    rm -rf "$WORK/wild_crops_$half" "$WORK/wild_photos_$half" "$WORK/wild_edited_$half"
    mkdir -p "$WORK/wild_crops_$half"
    mapfile -t names < <(ls "$FACES/$half" | sort)
    for name in "${names[@]:0:$WILD}"; do cp "$FACES/$half/$name" "$WORK/wild_crops_$half/"; done
    "$PY" benchmarks/wild_photos.py make --crops "$WORK/wild_crops_$half" \
      --photos "$WORK/wild_photos_$half"
    "$PY" inference.py --model "$model" --input "$WORK/wild_photos_$half" --edit gender \
      --align_faces --strength "$(awk "BEGIN{print ${sign[$half]} * $STRENGTH}")" \
      --steps "$PROJECT_STEPS" --space "$SPACE" --edit_method "$EDIT_METHOD" \
      --confidence "$CONFIDENCE" \
      --distance "$DISTANCE" --output "$WORK/wild_edited_$half/" > "$WORK/wild_edit_$half.log"
    bash "$JUDGE" "$WORK/wild_edited_$half" --expect "${expect[$half]}" --detect | tail -1 \
      > "$WORK/judge_wild_$half.json"
    "$PY" benchmarks/wild_photos.py outside --photos "$WORK/wild_photos_$half" \
      --outputs "$WORK/wild_edited_$half" > "$WORK/outside_wild_$half.json"
  done
  end=$(date +%s)
  "$PY" - "$WORK" "$((end - start))" "$WILD" <<'EOF'
import json, sys
work, seconds, wild = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda name: json.loads(open(f"{work}/{name}.json").read().strip().splitlines()[-1])
judged = [load(f"judge_wild_{half}") for half in ("testA", "testB")]
outside = [load(f"outside_wild_{half}") for half in ("testA", "testB")]
images = sum(j["images"] for j in judged)
faceless = sum(open(f"{work}/wild_edit_{h}.log").read().count("no face found, left out")
               for h in ("testA", "testB"))
print(json.dumps({
    "case": "stylegan_gender_edit_photos", "photos": 2 * wild, "edited": images,
    "photos_without_a_face_found": faceless,
    "flipped": round(sum(j["expected_rate"] * j["images"] for j in judged) / images, 4),
    "flipped_testA_to_female": judged[0]["expected_rate"],
    "flipped_testB_to_male": judged[1]["expected_rate"],
    "face_rate": round(sum(j["face_rate"] * j["images"] for j in judged) / images, 4),
    "outside_mean_abs_diff": round(sum(o["outside_mean_abs_diff"] * o["photos"] for o in outside)
                                   / sum(o["photos"] for o in outside), 4),
    "wall_seconds": seconds}))
EOF
fi
