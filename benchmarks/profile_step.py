"""Where a training step's time goes, by kind of op, in cyclegan_tf and in the PyTorch reference.

  .venv/bin/python benchmarks/profile_step.py --size 256                          # TF
  /tmp/torch-venv/bin/python benchmarks/profile_step.py --size 256 --framework torch
  .venv/bin/python benchmarks/profile_step.py --model stylegan --size 64 --mixed_precision bf16

Builds the same CycleGAN as benchmarks/throughput.py (ngf = ndf = 64, 6 blocks up to 128 px, 9
above, batch 1), or with --model stylegan (TF only) the StyleGAN of train.py's defaults (batch
32), runs warm-up steps, then profiles one step (tf.profiler / torch.profiler) and prints one
JSON line per kind of op: milliseconds in that step and share of the op time. Ops run one after
another on this CPU (1 inter-op thread), so the shares add up to the step. StyleGAN's step_s is
the mean of 16 steps (one of them with R1), the profile one step without R1.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

from throughput import default_blocks  # benchmarks/ is on sys.path when this script runs

HERE = os.path.dirname(os.path.abspath(__file__))

KINDS = (  # first match wins: (kind, substrings of the op name)
    ("depthwise conv (blur)", ("DepthwiseConv2d",)),
    ("conv backward (filter)", ("Conv2DBackpropFilter",)),
    ("conv backward (input)", ("Conv2DBackpropInput",)),
    ("conv backward", ("convolution_backward",)),
    ("conv forward", ("Conv2D", "mkldnn_convolution", "aten::_convolution")),
    ("instance norm", ("Mean", "SquaredDifference", "Rsqrt", "Tile", "batch_norm")),
    ("reflection pad", ("MirrorPad", "reflection_pad")),
    ("optimizer", ("ApplyAdam", "Adam", "lerp", "addcdiv")),
)


def kind_of(op: str) -> str:
    return next((kind for kind, names in KINDS if any(n in op for n in names)), "other")


def report(framework: str, size: int, step_s: float, op_ms: dict[str, float],
           **labels: str) -> None:
    by_kind: dict[str, float] = collections.Counter()
    for op, ms in op_ms.items():
        by_kind[kind_of(op)] += ms
    total = sum(by_kind.values())
    print(json.dumps({"framework": framework, "size": size, **labels,
                      "step_s": round(step_s, 3), "op_time_s": round(total / 1e3, 3)}))
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(json.dumps({"framework": framework, "size": size, "kind": kind,
                          "ms": round(ms, 1), "share": round(ms / total, 3)}))
    top = sorted(op_ms.items(), key=lambda kv: -kv[1])[:8]
    print(json.dumps({"framework": framework, "size": size,
                      "top_ops_ms": {op: round(ms, 1) for op, ms in top}}))


def profile_tf(size: int, blocks: int, threads: int, model_name: str = "cyclegan",
               mixed_precision: str = "off") -> None:
    sys.path.insert(0, os.path.dirname(HERE))
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cyclegan_tf.config import Config
    from cyclegan_tf.cyclegan import CycleGAN
    from cyclegan_tf.stylegan import StyleGAN

    if model_name == "stylegan":
        config = Config(model="stylegan", image_size=size, mixed_precision=mixed_precision)
        model, loss = StyleGAN(config), "D/loss"
        inputs = (tf.random.uniform([config.batch_size, size, size, 3], -1.0, 1.0, seed=1),)
    else:
        config = Config(image_size=size, ngf=64, ndf=64, n_blocks=blocks, batch_size=1,
                        mixed_precision=mixed_precision)
        model, loss = CycleGAN(config), "D_X/loss"
        inputs = tuple(tf.random.uniform([1, size, size, 3], -1.0, 1.0, seed=s) for s in (1, 2))
    step = model.distributed_step_fn(tf.distribute.get_strategy())

    def run() -> None:
        step(*inputs)["losses"][loss].numpy()

    for _ in range(3):
        run()
    timed = 16 if model_name == "stylegan" else 1  # one R1 step in 16 (r1_interval)
    start = time.perf_counter()
    for _ in range(timed):
        run()
    step_s = (time.perf_counter() - start) / timed
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        run()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    op_ms: dict[str, float] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                op_type = plane.event_metadata[event.metadata_id].name.rsplit(":", 1)[-1]
                if op_type != "Process":  # the executor's span around the ops, not an op
                    op_ms[op_type] += event.duration_ps / 1e9
    report("tf", size, step_s, op_ms, model=model_name, precision=mixed_precision)


def profile_torch(size: int, blocks: int, threads: int) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, HERE)
    import torch_reference

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = torch_reference.CycleGAN(64, 64, blocks)
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.rand(1, 3, size, size, generator=generator) * 2 - 1 for _ in range(2))
    for _ in range(3):
        model.train_step(x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        model.train_step(x, y)
        step_s = time.perf_counter() - start
    op_ms = {event.key: event.self_cpu_time_total / 1e3 for event in prof.key_averages()}
    report("torch", size, step_s, op_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--framework", choices=("tf", "torch"), default="tf")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op is 1)")
    parser.add_argument("--model", choices=("cyclegan", "stylegan"), default="cyclegan")
    parser.add_argument("--mixed_precision", choices=("off", "bf16"), default="off",
                        help="TF only")
    args = parser.parse_args()
    if args.framework == "torch" and (args.model != "cyclegan" or args.mixed_precision != "off"):
        parser.error("--framework torch profiles the fp32 CycleGAN only")
    blocks = default_blocks(args.size)
    if args.framework == "tf":
        profile_tf(args.size, blocks, args.threads, args.model, args.mixed_precision)
    else:
        profile_torch(args.size, blocks, args.threads)


if __name__ == "__main__":
    main()
