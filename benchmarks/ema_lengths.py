"""How long G's moving average should be: one training run keeps several averages side by side.

  python benchmarks/ema_lengths.py train 0.998,0.9995 --model stylegan --X ... (train.py's flags)
  python benchmarks/ema_lengths.py split RUN STEP

train: train.py, with an extra average of G per decay kept beside G_ema ("G_ema_0p998"...),
updated as G_ema is (the model's update_average: the same warm-up, (1 + step) / (10 + step), and
StyleGAN's buffers copied from G) and saved in every checkpoint. Comparing averages of one run
leaves out the spread between runs, which for StyleGAN is as large as what the average changes.
split: for each extra average in RUN's checkpoint of STEP, and for the raw G, a run folder
RUN_ema<decay> (RUN_raw) whose G_ema is it, so that evaluate.py --checkpoint_dir scores it:

  python evaluate.py --checkpoint_dir RUN_ema0.998 --step STEP --X ... --num 5000 --sample_sets 8
"""
import json
import os
import runpy
import shutil
import sys

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from cyclegan_tf import training  # noqa: E402
from cyclegan_tf.config import Config  # noqa: E402
from cyclegan_tf.faces import LAYOUT_FILE  # noqa: E402
from cyclegan_tf.gans import model_class  # noqa: E402

PREFIX = "G_ema_"


def name_of(decay: float) -> str:
    return PREFIX + repr(decay).replace(".", "p")


def with_extra_averages(build_model, decays: list[float]):
    """training.build_model, its model keeping one more average of G per decay."""

    def build(config: Config):
        model = build_model(config)
        extras = {}
        for decay in decays:
            average = model.build_generator(config, name_of(decay), dtype="float32")
            average.set_weights(model.G.get_weights())
            extras[decay] = average
        update_ema, checkpoint = model.update_ema, model.checkpoint

        def update_all():
            update_ema()
            for decay, average in extras.items():
                model.update_average(average, decay)

        model.update_ema = update_all
        model.checkpoint = lambda **extra: checkpoint(
            **{name_of(d): a for d, a in extras.items()}, **extra)
        return model

    return build


def train(decays: str, flags: list[str]) -> None:
    training.build_model = with_extra_averages(training.build_model,
                                               [float(d) for d in decays.split(",")])
    script = os.path.join(REPO, "train.py")
    sys.argv = [script] + flags
    runpy.run_path(script, run_name="__main__")


def split(run: str, step: int) -> None:
    run = os.path.normpath(run)
    config = Config.load(run)
    path = os.path.join(run, f"ckpt-{step}")
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    averages = {f"{run}_ema{name[len(PREFIX):].replace('p', '.')}": name
                for name in sorted(names) if name.startswith(PREFIX)}
    for out, name in {**averages, f"{run}_raw": "G"}.items():
        generator = model_class(config.model).build_generator(config, "G_ema", dtype="float32")
        status = tf.train.Checkpoint(**{name: generator}).restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        with open(os.path.join(run, "config.json")) as f:
            settings = json.load(f)
        settings["checkpoint_dir"] = out
        settings["ema_decay"] = (0.0 if name == "G"
                                  else float(name[len(PREFIX):].replace("p", ".")))
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(settings, f, indent=2, sort_keys=True)
        layout = os.path.join(run, LAYOUT_FILE)  # what --align_faces reads, as a run's
        if os.path.exists(layout):
            shutil.copy(layout, out)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(G_ema=generator), out, 1)
        print(f"{name} -> {manager.save(checkpoint_number=step)}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "split":
        split(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
