"""Generator inference speed: SavedModel (translate_float) vs onnxruntime vs LiteRT, in one run.

  .venv/bin/python benchmarks/portable_inference.py                # 256 px, ngf 64, 9 blocks
  .venv/bin/python benchmarks/portable_inference.py --size 64 --ngf 16 --blocks 3 --runs 3  # quick

Needs the export extra (pip install -e ".[export]"). The generator has random weights (the speed
does not depend on them): it is exported with export_translator(..., formats=all three), exactly
as export_graph.py does, and each runtime loads its own file from that folder. Every runtime gets
the same threads (--threads intra-op, 1 inter-op). Per batch size, after --warmup calls of each,
the runtimes take turns for --runs rounds (so that load from other processes hits all of them
alike) and the median call time gives images/s (the best call: what an idle machine would
come close to; on a shared machine the two differ). The last column is the largest difference from
the SavedModel's output on the same input (a sanity check, not a timing).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op 1)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    import ai_edge_litert
    import onnxruntime
    import tf2onnx
    from cyclegan_tf import portable
    from cyclegan_tf.config import Config
    from cyclegan_tf.cyclegan import build_generator
    from cyclegan_tf.export import export_translator

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; load average "
          f"{os.getloadavg()[0]:.2f}; threads: {args.threads} intra-op, 1 inter-op")
    print(f"tensorflow {tf.__version__}, tf2onnx {tf2onnx.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}")
    config = Config(image_size=args.size, ngf=args.ngf, n_blocks=args.blocks)
    generator = build_generator(config, "G")  # random weights
    folder = os.path.join(tempfile.mkdtemp(prefix="portable_bench_"), "model")
    started = time.perf_counter()
    export_translator(generator, folder, formats=portable.FORMATS)
    print(f"generator {args.size} px, ngf {args.ngf}, {args.blocks} blocks (random weights); "
          f"export of all three formats {time.perf_counter() - started:.1f} s")

    translate_float = tf.saved_model.load(folder).signatures["translate_float"]
    runners = {
        "SavedModel": lambda x: translate_float(images=tf.constant(x))["images"].numpy(),
        "onnxruntime": portable.onnx_runner(os.path.join(folder, "model.onnx"), args.threads),
        "LiteRT": portable.tflite_runner(os.path.join(folder, "model.tflite"), args.threads),
    }
    rows = []
    rng = np.random.default_rng(0)
    for batch in [int(b) for b in args.batches.split(",")]:
        images = rng.uniform(-1, 1, (batch, args.size, args.size, 3)).astype(np.float32)
        reference = runners["SavedModel"](images)
        diffs = {name: float(np.abs(run(images) - reference).max())
                 for name, run in runners.items()}
        for _ in range(args.warmup - 1):
            for run in runners.values():
                run(images)
        times = {name: [] for name in runners}
        for _ in range(args.runs):
            for name, run in runners.items():
                started = time.perf_counter()
                run(images)
                times[name].append(time.perf_counter() - started)
        for name in runners:
            median = statistics.median(times[name])
            rows.append((batch, name, median, batch / median, batch / min(times[name]),
                         diffs[name]))

    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (above 0 = other processes too)")
    print("| batch | runtime | median s/call | images/s (median) | images/s (best call) "
          "| max abs diff vs SavedModel |")
    print("|---|---|---|---|---|---|")
    for batch, name, median, rate, best, diff in rows:
        print(f"| {batch} | {name} | {median:.3f} | {rate:.2f} | {best:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
