"""Training steps per second of the face generators, side by side, for equal-wall-time comparisons.

  .venv/bin/python benchmarks/gan_speeds.py                       # dcgan, wgangp, stylegan, bf16
  .venv/bin/python benchmarks/gan_speeds.py --models dcgan,stylegan --mixed_precision off
  .venv/bin/python benchmarks/gan_speeds.py --models dcgan,stylegan,stylegan:channel_base=1024

Each model is built as benchmarks/faces_generate.sh trains it (64 px; DCGAN and WGAN-GP at
ngf = ndf = 64, batch 64; StyleGAN at its CPU defaults, batch 32), with any other train.py
settings given after the name (MODEL:FIELD=VALUE:..., e.g. stylegan:channel_base=1024:batch_size=64;
one model may appear several times with different settings), and traced; then the models take
turns, --steps steps each per round for --rounds rounds, so that a machine whose speed drifts
(shared hosts do: a 38-minute run here went from 1.2 to 2.4 steps/s and back) slows them alike.
Prints one JSON line per model (steps/s and real images read per second over all its rounds,
the rounds' spread) and one with each model's seconds per step relative to the first model's in
--models: with dcgan first, the DCGAN steps that take the time of one step of each model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Each model's settings in benchmarks/faces_generate.sh (what the README's figures were trained with).
FACES_SETTINGS = {"dcgan": dict(ngf=64, ndf=64, batch_size=64),
                  "wgangp": dict(ngf=64, ndf=64, batch_size=64),
                  "stylegan": dict(ngf=256, ndf=256, batch_size=32)}


def parse_setting(text: str) -> tuple[str, int | float | str]:
    """FIELD=VALUE -> (field, the value as an int, float or string)."""
    field, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return field, kind(value)
        except ValueError:
            pass
    return field, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="dcgan,wgangp,stylegan",
                        help=f"comma-separated, of {', '.join(FACES_SETTINGS)}, each optionally "
                             "followed by :FIELD=VALUE settings")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--mixed_precision", choices=("off", "bf16"), default="bf16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16,
                        help="steps per model per round (16: one StyleGAN R1 step in each)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op is 1)")
    args = parser.parse_args()
    specs = args.models.split(",")
    unknown = {spec.split(":")[0] for spec in specs} - set(FACES_SETTINGS)
    if unknown:
        parser.error(f"--models: unknown {', '.join(sorted(unknown))}")
    if len(set(specs)) < len(specs):
        parser.error("--models: a model with the same settings is given twice")

    sys.path.insert(0, os.path.dirname(HERE))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cyclegan_tf import gans
    from cyclegan_tf.config import Config

    runners, batches = {}, {}
    for spec in specs:
        name, *settings = spec.split(":")
        try:
            config = Config(model=name, image_size=args.size, mixed_precision=args.mixed_precision,
                            **{**FACES_SETTINGS[name], **dict(parse_setting(s) for s in settings)})
        except (TypeError, ValueError) as error:  # an unknown field, or a value of the wrong type
            parser.error(f"--models {spec}: {error}")
        batches[spec] = config.batch_size
        model = gans.build_model(config)
        step = model.distributed_step_fn(tf.distribute.get_strategy())
        real = tf.random.uniform([config.batch_size * model.batches_per_step, args.size,
                                  args.size, 3], -1.0, 1.0, seed=1)
        runners[spec] = (int(real.shape[0]), lambda step=step, real=real:
                         step(real)["losses"]["G/loss"].numpy())
        for _ in range(3):  # trace and warm up
            runners[spec][1]()

    seconds = {spec: [] for spec in runners}
    for _ in range(args.rounds):
        for spec, (_, run) in runners.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                run()
            seconds[spec].append((time.perf_counter() - start) / args.steps)

    per_step = {}
    for spec, (images, _) in runners.items():  # a WGAN-GP step reads n_critic batches
        per_step[spec] = sum(seconds[spec]) / len(seconds[spec])
        print(json.dumps({"model": spec, "size": args.size, "batch": batches[spec],
                          "precision": args.mixed_precision,
                          "steps_per_s": round(1 / per_step[spec], 3),
                          "images_per_s": round(images / per_step[spec], 1),
                          "round_steps_per_s": [round(1 / s, 3) for s in seconds[spec]]}))
    first = next(iter(per_step))
    print(json.dumps({f"{first}_steps_per_step": {spec: round(s / per_step[first], 3)
                                                   for spec, s in per_step.items()}}))


if __name__ == "__main__":
    main()
