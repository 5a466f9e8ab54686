"""Throughput of cyclegan_tf against the same GANs in PyTorch (benchmarks/torch_reference.py).

  bash benchmarks/throughput.sh                     # the full benchmark (64, 128, 256 px, ngf 64)
  bash benchmarks/throughput.sh --quick             # a smoke test (32 px, ngf 8, 3 blocks)
  bash benchmarks/throughput.sh --models dcgan,wgangp   # the face generators, 64 and 80 px,
                                                    # batch 64 (--gan_sizes, --gan_batch)
  .venv/bin/python benchmarks/throughput.py --torch_python /tmp/torch-venv/bin/python ...

The full run does about 26 TFLOP per framework (8 calls of each case): on 2 cores, expect 15-30
minutes in all. Run it on an otherwise idle machine (each env line shows the load average).

This process only runs the workers, one after the other: the TF worker in this Python (the project
venv), then the torch worker in --torch_python (a separate venv), each with the same threads (2
intra-op, 1 inter-op by default). Every measurement is one JSON line on stdout; the last lines
compare the frameworks. Per framework:

  env            versions and thread settings
  matmul_peak    fp32 2048x2048 matmul GFLOP/s (numpy sgemm and tf.matmul; torch.mm)
  train_step     one full CycleGAN step, batch 1: first step (tf: tracing included), then after
                 warm-up the median of --steps steps; analytic GFLOP per step and GFLOP/s achieved
  input_pipeline (tf) seconds per batch of cyclegan_tf.data.make_dataset on a small tfrecords file,
                 with the default in-memory cache and without it (decoding every image), and as a
                 fraction of the median train step
  inference      generator images/s at --inference_size for batch 1 and 8 (tf: the exported
                 Translator.translate_float, or the generator's call in a tf.function with
                 --tf_inference generator; torch: the generator in eval mode under inference_mode)
  gan_step       (--models dcgan,wgangp) one training step of DCGAN or WGAN-GP at --gan_batch:
                 steps/s and real images/s (a WGAN-GP step reads n_critic = 5 batches: five
                 critic updates, one generator update), G_ema updated in both frameworks

FLOPs are counted for convolutions only (norms, activations, padding and optimizers are left out):
2*H_out*W_out*Cin*Cout*k*k per forward (a transposed convolution: 2*H_in*W_in*Cin*Cout*k*k, the
multiply-adds it does; the often quoted 56.8 GMAC of the 256 px generator counts them at output
size, 4x their work: here 99.1 GFLOP). A step does 6 generator passes (G(x), F(G(x)), F(y), G(F(y)), G(y), F(x))
and 6 discriminator passes (D_Y(fake_y), D_X(fake_x) for the generators' loss; D_Y(real_y),
D_Y(pool), D_X(real_x), D_X(pool) for the discriminators'). Backward costs 2x forward (input and
weight gradients) for the generator passes and the four passes that train D; the generators'
gradient only flows through D_Y(fake_y) and D_X(fake_x), which costs 1x (input gradients only).
So a step is 18 generator forwards + 16 discriminator forwards.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TORCH_PYTHON = os.path.join(os.environ.get("TORCH_VENV", "/tmp/torch-venv"), "bin", "python")
INFERENCE_BATCHES = (1, 8)


# -- analytic FLOPs -------------------------------------------------------------------------------

def conv_flops(h_out: int, w_out: int, c_in: int, c_out: int, k: int) -> int:
    return 2 * h_out * w_out * c_in * c_out * k * k


def generator_flops(size: int, ngf: int, n_blocks: int) -> int:
    """One forward of the ResnetGenerator on a size x size image."""
    s2, s4 = size // 2, size // 4
    return (conv_flops(size, size, 3, ngf, 7)                      # c7s1-ngf
            + conv_flops(s2, s2, ngf, 2 * ngf, 3)                  # d2ngf
            + conv_flops(s4, s4, 2 * ngf, 4 * ngf, 3)              # d4ngf
            + 2 * n_blocks * conv_flops(s4, s4, 4 * ngf, 4 * ngf, 3)  # R4ngf
            + conv_flops(s4, s4, 4 * ngf, 2 * ngf, 3)              # u2ngf (transposed: input size)
            + conv_flops(s2, s2, 2 * ngf, ngf, 3)                  # ungf (transposed: input size)
            + conv_flops(size, size, ngf, 3, 7))                   # c7s1-3


def discriminator_flops(size: int, ndf: int) -> int:
    """One forward of the 70x70 PatchGAN (4x4 convolutions, padding 1)."""
    total, h, c_in = 0, size, 3
    for c_out, stride in ((ndf, 2), (2 * ndf, 2), (4 * ndf, 2), (8 * ndf, 1), (1, 1)):
        h = (h + 2 - 4) // stride + 1
        total += conv_flops(h, h, c_in, c_out, 4)
        c_in = c_out
    return total


def step_flops(size: int, ngf: int, ndf: int, n_blocks: int) -> int:
    g, d = generator_flops(size, ngf, n_blocks), discriminator_flops(size, ndf)
    return 6 * g * 3 + 2 * d * 2 + 4 * d * 3  # see the module docstring


def default_blocks(size: int) -> int:
    return 6 if size <= 128 else 9  # cyclegan_tf.config.Config's rule


# -- measuring --------------------------------------------------------------------------------------

def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def machine_load() -> dict:
    """CPUs and load: timings only mean something on an otherwise idle machine (with other
    processes busy, 2 OpenMP threads in torch can lose most of their time waiting for each other)."""
    load = os.getloadavg()[0]
    record = {"cpus": os.cpu_count(), "loadavg_1m": round(load, 2)}
    if load > 0.5:
        record["warning"] = "machine busy before this run: timings are not comparable"
    return record


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(fn: Callable[[], object], steps: int, warmup: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of `steps` calls after `warmup` more)."""
    first = timed(fn)
    for _ in range(warmup):
        fn()
    return first, statistics.median(timed(fn) for _ in range(steps))


def matmul_record(framework: str, backend: str, fn: Callable[[], object], n: int) -> dict:
    fn()
    times = [timed(fn) for _ in range(7)]
    gflop = 2 * n**3 / 1e9
    return {"case": "matmul_peak", "framework": framework, "backend": backend, "n": n,
            "dtype": "float32", "gflops_best": round(gflop / min(times), 1),
            "gflops_median": round(gflop / statistics.median(times), 1)}


def train_record(framework: str, args, size: int, blocks: int, first: float, median: float,
                 params: int, peak: float, **extra) -> dict:
    gflop = step_flops(size, args.ngf, args.ndf, blocks) / 1e9
    return {"case": "train_step", "size": size, "ngf": args.ngf, "ndf": args.ndf, "blocks": blocks,
            "batch": 1, "framework": framework, **extra, "params": params,
            "first_step_s": round(first, 4), "median_step_s": round(median, 4),
            "steps_per_s": round(1 / median, 4), "gflop_per_step": round(gflop, 2),
            "gflops": round(gflop / median, 1), "of_matmul_peak": round(gflop / median / peak, 3)}


def gan_record(framework: str, args, model: str, size: int, batches: int, first: float,
               median: float, **extra) -> dict:
    return {"case": "gan_step", "model": model, "size": size, "ngf": args.ngf, "ndf": args.ndf,
            "batch": args.gan_batch, "batches_per_step": batches, "framework": framework,
            **extra, "first_step_s": round(first, 4), "median_step_s": round(median, 4),
            "steps_per_s": round(1 / median, 4),
            "images_per_s": round(args.gan_batch * batches / median, 1)}


def inference_record(framework: str, args, batch: int, first: float, median: float,
                     **extra) -> dict:
    size = args.inference_size
    blocks = args.blocks or default_blocks(size)
    gflop = generator_flops(size, args.ngf, blocks) / 1e9
    return {"case": "inference", "size": size, "ngf": args.ngf, "blocks": blocks, "batch": batch,
            "framework": framework, **extra, "first_call_s": round(first, 4),
            "median_s": round(median, 4), "images_per_s": round(batch / median, 3),
            "gflop_per_image": round(gflop, 2), "gflops": round(gflop * batch / median, 1)}


# -- the TensorFlow worker --------------------------------------------------------------------------

def tf_worker(args) -> None:
    sys.path.insert(0, REPO)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from cyclegan_tf import data, demo
    from cyclegan_tf.config import Config
    from cyclegan_tf.cyclegan import CycleGAN, build_generator
    from cyclegan_tf.export import Translator

    variant = {"jit_compile": args.jit_compile, "mixed_precision": args.mixed_precision}
    emit({"case": "env", "framework": "tf", "version": tf.__version__, "keras": keras.__version__,
          "numpy": np.__version__, "intra_op_threads": args.threads, "inter_op_threads": 1,
          "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), **variant,
          **machine_load()})

    n = 2048
    a, b = (np.random.default_rng(i).standard_normal((n, n), dtype=np.float32) for i in (0, 1))
    emit(matmul_record("tf", "numpy", lambda: a @ b, n))
    ta, tb = tf.constant(a), tf.constant(b)
    tf_peak = matmul_record("tf", "tf.matmul", lambda: tf.matmul(ta, tb)[0, 0].numpy(), n)
    emit(tf_peak)
    peak = tf_peak["gflops_best"]

    if args.models != ["cyclegan"]:
        return tf_gan_worker(args, variant)

    for size in args.sizes:
        blocks = args.blocks or default_blocks(size)
        config = Config(image_size=size, ngf=args.ngf, ndf=args.ndf, n_blocks=blocks,
                        batch_size=1, **variant)
        model = CycleGAN(config)
        step = model.distributed_step_fn(tf.distribute.get_strategy())
        real_x = tf.random.uniform([1, size, size, 3], -1.0, 1.0, seed=1)
        real_y = tf.random.uniform([1, size, size, 3], -1.0, 1.0, seed=2)
        trace = timed(lambda: step.get_concrete_function(real_x, real_y))
        first, median = measure(lambda: step(real_x, real_y)["losses"]["D_X/loss"].numpy(),
                                args.steps, args.warmup)
        params = sum(int(np.prod(v.shape)) for net in (model.G, model.F, model.D_X, model.D_Y)
                     for v in net.trainable_variables)
        # first_step_s: tracing (trace_s) + graph optimisation + the first run.
        emit(train_record("tf", args, size, blocks, trace + first, median, params, peak,
                          **variant, trace_s=round(trace, 4)))
        del model, step
        keras.backend.clear_session()
        gc.collect()

        with tempfile.TemporaryDirectory() as tmp:
            folders = demo.make_dataset(os.path.join(tmp, "images"), train_count=32, test_count=0,
                                        size=size)
            records = os.path.join(tmp, "X.tfrecords")
            data.build_tfrecords(folders["trainA"], records, log=lambda _: None)
            for cache in (None, False):
                batches = iter(data.make_dataset(records, size, batch_size=1, cache=cache))
                first_batch = timed(lambda: next(batches))
                count = 64
                per_batch = timed(lambda: [next(batches) for _ in range(count)]) / count
                emit({"case": "input_pipeline", "size": size, "framework": "tf", "batch": 1,
                      "images": 32, "format": "png",
                      "cache": "in memory (default)" if cache is None else "off (decode each time)",
                      "first_batch_s": round(first_batch, 4), "batch_s": round(per_batch, 5),
                      "batches_per_s": round(1 / per_batch, 1),
                      "of_median_step": round(per_batch / median, 4)})

    size = args.inference_size
    config = Config(image_size=size, ngf=args.ngf, ndf=args.ndf,
                    n_blocks=args.blocks or default_blocks(size), **variant)
    generator = build_generator(config, "G")
    if args.tf_inference == "translate_float":  # as exported: never XLA-compiled
        translator = Translator(generator)
        path, jit = "Translator.translate_float", False
        translate = lambda images: translator.translate_float(images)["images"]  # noqa: E731
    else:
        path, jit = "tf.function(generator.call)", args.jit_compile
        translate = tf.function(lambda images: generator(images, training=False),
                                jit_compile=jit)
    for batch in INFERENCE_BATCHES:
        images = tf.random.uniform([batch, size, size, 3], -1.0, 1.0, seed=3)
        # translate_float traces once for any shape: batch 8's first call is not a trace.
        first, median = measure(lambda: translate(images).numpy(), args.steps, args.warmup)
        emit(inference_record("tf", args, batch, first, median, path=path, jit_compile=jit,
                              mixed_precision=args.mixed_precision))


def tf_gan_worker(args, variant: dict) -> None:
    import keras
    import tensorflow as tf

    from cyclegan_tf import gans
    from cyclegan_tf.config import Config

    for name in args.models:
        for size in args.gan_sizes:
            config = Config(model=name, image_size=size, ngf=args.ngf, ndf=args.ndf,
                            batch_size=args.gan_batch, **variant)
            model = gans.build_model(config)
            step = model.distributed_step_fn(tf.distribute.get_strategy())
            batches = model.batches_per_step
            real = tf.random.uniform([args.gan_batch * batches, size, size, 3], -1.0, 1.0, seed=1)
            trace = timed(lambda: step.get_concrete_function(real))
            first, median = measure(lambda: step(real)["losses"]["G/loss"].numpy(),
                                    args.steps, args.warmup)
            emit(gan_record("tf", args, name, size, batches, trace + first, median, **variant,
                            trace_s=round(trace, 4)))
            del model, step
            keras.backend.clear_session()
            gc.collect()


# -- the PyTorch worker -----------------------------------------------------------------------------

def torch_worker(args) -> None:
    import torch

    import torch_reference as ref  # beside this file, hence on sys.path

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    emit({"case": "env", "framework": "torch", "version": torch.__version__,
          "intra_op_threads": torch.get_num_threads(),
          "inter_op_threads": torch.get_num_interop_threads(),
          "mkldnn": torch.backends.mkldnn.is_available(), **machine_load()})

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch_peak = matmul_record("torch", "torch.mm", lambda: torch.mm(a, b), n)
    emit(torch_peak)
    peak = torch_peak["gflops_best"]

    if args.models != ["cyclegan"]:
        for name in args.models:
            for size in args.gan_sizes:
                model = ref.NoiseGAN(name, size, args.ngf, args.ndf)
                real = torch.rand(args.gan_batch * model.n_critic, 3, size, size) * 2 - 1
                first, median = measure(lambda: model.train_step(real), args.steps, args.warmup)
                emit(gan_record("torch", args, name, size, model.n_critic, first, median))
                del model
                gc.collect()
        return

    for size in args.sizes:
        blocks = args.blocks or default_blocks(size)
        model = ref.CycleGAN(args.ngf, args.ndf, blocks)
        real_x = torch.rand(1, 3, size, size) * 2 - 1
        real_y = torch.rand(1, 3, size, size) * 2 - 1
        first, median = measure(lambda: model.train_step(real_x, real_y), args.steps, args.warmup)
        params = sum(p.numel() for net in (model.G, model.F, model.D_X, model.D_Y)
                     for p in net.parameters())
        emit(train_record("torch", args, size, blocks, first, median, params, peak))
        del model
        gc.collect()

    size = args.inference_size
    generator = ref.ResnetGenerator(args.ngf, args.blocks or default_blocks(size))
    generator.apply(ref.init_weights)
    generator.eval()
    for batch in INFERENCE_BATCHES:
        images = torch.rand(batch, 3, size, size) * 2 - 1

        def translate():
            with torch.inference_mode():
                return generator(images)

        first, median = measure(translate, args.steps, args.warmup)
        emit(inference_record("torch", args, batch, first, median,
                              path="generator.eval() under torch.inference_mode()"))


# -- the driver -------------------------------------------------------------------------------------

def run_worker(python: str, framework: str, argv: list[str], threads: int) -> list[dict]:
    """Runs one worker to the end, echoing its JSON lines as they come; returns them."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
               OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    command = [python, os.path.abspath(__file__), *argv, "--worker", framework]
    records = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        for line in process.stdout:
            line = line.strip()
            if line.startswith("{"):
                records.append(json.loads(line))
                print(line, flush=True)
            elif line:
                print(line, file=sys.stderr, flush=True)
    if process.returncode != 0:
        emit({"case": "error", "framework": framework, "returncode": process.returncode})
    return records


def compare(records: list[dict]) -> None:
    """One line per size: TF steps/s over torch steps/s; one per inference batch."""
    def find(case, framework, **keys):
        return next((r for r in records if r["case"] == case and r["framework"] == framework
                     and all(r.get(k) == v for k, v in keys.items())), None)

    for tf_record in [r for r in records if r["case"] == "train_step" and r["framework"] == "tf"]:
        torch_record = find("train_step", "torch", size=tf_record["size"])
        if torch_record:
            emit({"case": "ratio_train_step", "size": tf_record["size"],
                  "tf_steps_per_s": tf_record["steps_per_s"],
                  "torch_steps_per_s": torch_record["steps_per_s"],
                  "tf_over_torch": round(tf_record["steps_per_s"] / torch_record["steps_per_s"], 3),
                  "jit_compile": tf_record["jit_compile"],
                  "mixed_precision": tf_record["mixed_precision"]})
    for tf_record in [r for r in records if r["case"] == "gan_step" and r["framework"] == "tf"]:
        torch_record = find("gan_step", "torch", model=tf_record["model"], size=tf_record["size"])
        if torch_record:
            emit({"case": "ratio_gan_step", "model": tf_record["model"], "size": tf_record["size"],
                  "batch": tf_record["batch"], "tf_images_per_s": tf_record["images_per_s"],
                  "torch_images_per_s": torch_record["images_per_s"],
                  "tf_over_torch": round(tf_record["images_per_s"]
                                         / torch_record["images_per_s"], 3),
                  "jit_compile": tf_record["jit_compile"],
                  "mixed_precision": tf_record["mixed_precision"]})
    for tf_record in [r for r in records if r["case"] == "inference" and r["framework"] == "tf"]:
        torch_record = find("inference", "torch", batch=tf_record["batch"])
        if torch_record:
            emit({"case": "ratio_inference", "size": tf_record["size"], "batch": tf_record["batch"],
                  "tf_images_per_s": tf_record["images_per_s"],
                  "torch_images_per_s": torch_record["images_per_s"],
                  "tf_over_torch": round(tf_record["images_per_s"] / torch_record["images_per_s"], 3),
                  "tf_path": tf_record["path"]})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128,256", help="training step sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=0, help="0: 6 up to 128 px, 9 above")
    parser.add_argument("--inference_size", type=int, default=256)
    parser.add_argument("--models", default="cyclegan",
                        help="cyclegan, or face generators: dcgan,wgangp (their steps only)")
    parser.add_argument("--gan_sizes", default="64,80", help="dcgan/wgangp image sizes")
    parser.add_argument("--gan_batch", type=int, default=64, help="dcgan/wgangp batch size")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 32 px, ngf and ndf 8, 3 blocks, 3 steps")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op is 1)")
    parser.add_argument("--jit_compile", action="store_true", help="TF: compile the step with XLA")
    parser.add_argument("--mixed_precision", default="off", choices=("off", "bf16"),
                        help="TF: mixed_bfloat16 compute")
    parser.add_argument("--tf_inference", default="translate_float",
                        choices=("translate_float", "generator"),
                        help="TF inference path: the exported Translator's translate_float, or "
                             "the generator's call in a tf.function")
    parser.add_argument("--frameworks", default="tf,torch")
    parser.add_argument("--torch_python", default=DEFAULT_TORCH_PYTHON,
                        help="the Python of the torch venv (default $TORCH_VENV/bin/python)")
    parser.add_argument("--worker", choices=("tf", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.ngf, args.ndf, args.blocks, args.inference_size = "32", 8, 8, 3, 32
        args.steps = min(args.steps, 3)
        args.warmup = min(args.warmup, 1)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    args.gan_sizes = [int(s) for s in str(args.gan_sizes).split(",") if s]
    args.models = [m for m in args.models.split(",") if m]
    if "cyclegan" in args.models and len(args.models) > 1:
        parser.error("--models: cyclegan, or dcgan and/or wgangp (one benchmark at a time)")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker == "tf":
        return tf_worker(args)
    if args.worker == "torch":
        return torch_worker(args)
    pythons = {"tf": sys.executable, "torch": args.torch_python}
    records = []
    for framework in args.frameworks.split(","):
        records += run_worker(pythons[framework], framework, argv, args.threads)
    compare(records)


if __name__ == "__main__":
    main()
