#!/usr/bin/env bash
# StyleGAN on real faces, end to end as a user runs it. Prints JSON lines:
#  (a) generation: benchmarks/faces_generate.sh with MODEL=stylegan (5000 crops, 64 px, FID/KID
#      at POINTS checkpoints, the judge's face rate of 500 samples); compare with the DCGAN /
#      WGAN-GP lines of the same script at the same wall time (benchmarks/README.md);
#  (b) gender swap by latent editing: a direction learned from LIMIT men -> LIMIT women of
#      trainA/trainB (inference.py --learn_direction), then the 250 + 250 test faces edited
#      (--edit gender, +STRENGTH for men, -STRENGTH for women) and judged: flipped rate, face
#      rate, and how close each projection came to its face (the projector's distance).
#      The CycleGAN faces recipe's figures for the same faces: benchmarks/faces_quality.sh.
#   bash benchmarks/faces_stylegan.sh        # FACES=../shared/data/faces WORK=/tmp/faces_stylegan
# Knobs (environment): STEPS=4000 NGF=256 NDF=256 BATCH=32 POINTS=4 (passed to faces_generate.sh)
# LIMIT=100 PROJECT_STEPS=200 STRENGTH=1.5 DISTANCE=auto (vgg16 when its weights are here).
# Rerunning with the same WORK resumes the training and reuses a learned direction.
set -euo pipefail
cd "$(dirname "$0")/.."
FACES=${FACES:-../shared/data/faces}
WORK=${WORK:-/tmp/faces_stylegan}
LIMIT=${LIMIT:-100}
PROJECT_STEPS=${PROJECT_STEPS:-200}
STRENGTH=${STRENGTH:-1.5}
DISTANCE=${DISTANCE:-auto}
PY=${PYTHON:-.venv/bin/python}
JUDGE=${JUDGE:-../shared/tools/gender_judge.sh}
export TF_CPP_MIN_LOG_LEVEL=3

# (a) generation: the generator protocol, with StyleGAN's CPU widths and batch.
MODEL=stylegan STEPS=${STEPS:-4000} NGF=${NGF:-256} NDF=${NDF:-256} BATCH=${BATCH:-32} \
  POINTS=${POINTS:-4} FACES="$FACES" WORK="$WORK" bash benchmarks/faces_generate.sh
model="$WORK/stylegan"  # the export faces_generate.sh wrote

# (b) gender swap in the latent space.
start=$(date +%s)
[ -f "$model/directions/gender.npy" ] || "$PY" inference.py --model "$model" \
  --learn_direction gender --from_images "$FACES/trainA" --to_images "$FACES/trainB" \
  --limit "$LIMIT" --steps "$PROJECT_STEPS" --distance "$DISTANCE" > "$WORK/direction.log"
declare -A expect=([testA]=female [testB]=male) sign=([testA]=1 [testB]=-1)
for half in testA testB; do
  rm -rf "$WORK/edited_$half"
  "$PY" inference.py --model "$model" --input "$FACES/$half" --edit gender \
    --strength "$(awk "BEGIN{print ${sign[$half]} * $STRENGTH}")" --steps "$PROJECT_STEPS" \
    --distance "$DISTANCE" --output "$WORK/edited_$half/" > "$WORK/edit_$half.log"
  bash "$JUDGE" "$WORK/edited_$half" --expect "${expect[$half]}" --detect | tail -1 \
    > "$WORK/judge_edit_$half.json"
done
end=$(date +%s)
"$PY" - "$WORK" "$((end - start))" "$STRENGTH" "$LIMIT" "$PROJECT_STEPS" <<'EOF'
import json, re, statistics, sys
work, seconds, strength, limit, steps = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
judged = {h: json.loads(open(f"{work}/judge_edit_{h}.json").read()) for h in ("testA", "testB")}
distances, name = [], ""
for half in ("testA", "testB"):
    for line in open(f"{work}/edit_{half}.log"):
        found = re.search(r": (\w+) distance ([0-9.]+)$", line.strip())
        if found and not line.startswith("projection step"):
            name = found.group(1)
            distances.append(float(found.group(2)))
images = sum(j["images"] for j in judged.values())
print(json.dumps({
    "case": "stylegan_gender_edit", "strength": float(strength), "direction_from": int(limit),
    "projection_steps": int(steps), "distance": name,
    "flipped": round(sum(j["expected_rate"] * j["images"] for j in judged.values()) / images, 4),
    "flipped_testA_to_female": judged["testA"]["expected_rate"],
    "flipped_testB_to_male": judged["testB"]["expected_rate"],
    "face_rate": round(sum(j["face_rate"] * j["images"] for j in judged.values()) / images, 4),
    "projection_distance_mean": round(statistics.mean(distances), 4) if distances else None,
    "wall_seconds": seconds}))
EOF
