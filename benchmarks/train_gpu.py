"""GPU training throughput: samples/s of our trainer for a 256-512-256-10 MLP on 1,000,000 x
256 synthetic rows, bf16, batch sizes 4,096 to 65,536; against a textbook PyTorch loop on
the same GPU and against the GPU's bf16 roofline (6 x parameters FLOPs per sample).

    python benchmarks/train_gpu.py                      # on a CUDA machine
    python benchmarks/train_gpu.py --peak-tflops 989    # a GPU the peak table lacks
    python benchmarks/train_gpu.py --device cpu --rows 4096 --batches 512 --peak-tflops 1
                                  # checks the script on a CPU (the tests do); no figures

Target: at least 50 million samples/s on an H100. Each comparison prints one line,
``NAME: ours=VALUE UNIT PEER=VALUE UNIT ratio=R`` (R = ours / peer); '#' lines describe.

- ours: ``train_mlp`` as the pipeline runs it (data on the GPU, index-slice batches, bf16
  autocast, fused AdamW, the whole step replayed as one CUDA graph). Samples/s is the median
  over the epochs after the first of the train loop alone (``train_seconds`` in the
  history, which ends with the epoch's one host sync); per-epoch evaluation excluded.
- textbook: TensorDataset + DataLoader on host tensors, ``.to(device)`` per batch, Adam,
  the same bf16 autocast; timed over one epoch after a warm-up batch.
- roofline: peak dense bf16 FLOP/s / (6 x parameters): forward 2 and backward 4 FLOPs per
  weight and sample, the matmuls only.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from components.core.training.config import TrainConfig
from components.core.training.train import train_mlp

IN_FEATURES, HIDDEN, CLASSES = 256, (512, 256), 10
TARGET_H100 = 50e6  # samples/s
VAL_ROWS = 16_384  # held out from the same teacher, for the accuracy printed per batch size

# Dense (no sparsity) bf16 tensor-core peaks from the vendor data sheets, FLOP/s. The first
# name contained in torch.cuda.get_device_name() wins, so specific names come first.
PEAK_BF16 = [
    ("GH200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
]


def parameters() -> int:
    sizes = (IN_FEATURES, *HIDDEN, CLASSES)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def peak_flops(name: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for key, flops in PEAK_BF16:
        if key.lower() in name.lower():
            return flops
    return None


def synthetic(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian rows labelled by a random linear teacher: learnable, not trivial. One call
    per data set: another call with another seed draws another teacher."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, IN_FEATURES), dtype=np.float32)
    teacher = rng.standard_normal((IN_FEATURES, CLASSES), dtype=np.float32)
    return x, (x @ teacher).argmax(1).astype(np.int64)


def line(name: str, ours: float, peer_name: str, peer: float, unit: str) -> str:
    return f"{name}: ours={ours:.3g} {unit} {peer_name}={peer:.3g} {unit} ratio={ours / peer:.3g}"


def run_ours(
    x, y, x_val, y_val, batch: int, epochs: int, graphs: bool, device: torch.device
) -> tuple[float, dict]:
    config = TrainConfig(
        hidden_sizes=HIDDEN,
        dropout=0.0,
        learning_rate=2e-3,
        batch_size=batch,
        max_epochs=epochs,
        patience=epochs,
        precision="bf16",
        device=device.type,
        cuda_graphs=graphs,
        distributed="off",
    )
    result = train_mlp(x, y, x_val, y_val, CLASSES, config)
    steady = result.history[1:] or result.history
    rate = statistics.median(h["samples_per_second"] for h in steady)
    return rate, result.history[-1] | result.extra


def run_textbook(x, y, batch: int, device: torch.device) -> float:
    """One epoch of the tutorial loop (after one warm-up batch), samples/s."""
    torch.manual_seed(0)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch, shuffle=True
    )
    sizes = (IN_FEATURES, *HIDDEN)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], CLASSES)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows, start = 0, 0.0
    for i, (xb, yb) in enumerate(loader):
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        if i == 0:  # warm-up batch: cuBLAS handles, allocator, optimiser state
            _sync(device)
            start = time.perf_counter()
        else:
            rows += xb.shape[0]
    _sync(device)
    return rows / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic training rows")
    parser.add_argument(
        "--batches", default="4096,8192,16384,32768,65536", help="comma-separated batch sizes"
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run of ours (>= 2)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s")
    parser.add_argument("--skip-textbook", action="store_true", help="ours and roofline only")
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda", help="cpu: check the script only"
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "train_gpu.py needs a CUDA GPU and none is visible (torch.cuda.is_available() is "
            "False); run it on an accelerator machine. CPU figures: benchmarks/train_speed.py",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        print(f"# {name} has no bf16 tensor cores; figures will be far below the target")
    peak = peak_flops(name, args.peak_tflops)
    flops_per_sample = 6 * parameters()
    x, y = synthetic(args.rows + VAL_ROWS)
    x, y, x_val, y_val = x[VAL_ROWS:], y[VAL_ROWS:], x[:VAL_ROWS], y[:VAL_ROWS]
    print(
        f"# {name}, torch {torch.__version__}; MLP {IN_FEATURES}-{'-'.join(map(str, HIDDEN))}-"
        f"{CLASSES}: {parameters():,} parameters, {flops_per_sample / 1e6:.3f} MFLOP per "
        f"training sample; {args.rows:,} rows; bf16"
    )
    if peak is None:
        print(f"# no bf16 peak known for {name!r}: pass --peak-tflops for the roofline lines")
    best = 0.0
    for batch in (int(b) for b in args.batches.split(",")):
        ours, last = run_ours(x, y, x_val, y_val, batch, max(2, args.epochs), True, device)
        eager, _ = run_ours(x, y, x_val, y_val, batch, 2, False, device)
        best = max(best, ours)
        print(
            f"# batch {batch}: ours {ours / 1e6:.3g} M samples/s (CUDA graph: "
            f"{last['cuda_graph']}), same trainer with eager steps {eager / 1e6:.3g} M/s; "
            f"val accuracy after {last['epoch']} epochs {last['val_accuracy']:.3f}"
        )
        if not args.skip_textbook:
            book = run_textbook(x, y, batch, device)
            print(line(f"gpu_train_samples_per_s_b{batch}", ours / 1e6, "textbook", book / 1e6,
                       "Msamples/s"))  # fmt: skip
        if peak is not None:
            roof = peak / flops_per_sample
            print(line(f"gpu_bf16_roofline_b{batch}", ours / 1e6, "roofline", roof / 1e6,
                       "Msamples/s"))  # fmt: skip
    verdict = "met" if best >= TARGET_H100 else "not met"
    print(f"# best {best / 1e6:.3g} M samples/s; target {TARGET_H100 / 1e6:.0f} M/s on an H100: "
          f"{verdict}{'' if 'H100' in name else ' (this is not an H100)'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
