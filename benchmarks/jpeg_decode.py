"""Can the input keep the GPU fed? JPEG decoding on the CPU against ``decode_jpeg(device="cuda")``.

Encodes synthetic 500 x 375 photos-like images (smooth gradients plus noise, about the size of an
ImageNet JPEG) once, then decodes the batch repeatedly: with torchvision on the CPU (the
DataLoader's path, per image) and, where a GPU is present, with nvJPEG in one batched call.
Prints images/s; compare with ``googlenet bench``'s training images/s to see whether decoding
limits training.

    python benchmarks/jpeg_decode.py [--device cuda] [--count 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.io import decode_jpeg, encode_jpeg


def synthetic_jpegs(count: int, height: int = 375, width: int = 500) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ys = torch.linspace(0, 1, height).view(1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width)
    out = []
    for _ in range(count):
        color = torch.rand(3, 1, 1, generator=g)
        img = color * ys + (1 - color) * xs + 0.1 * torch.randn(3, height, width, generator=g)
        out.append(encode_jpeg((img.clamp(0, 1) * 255).to(torch.uint8), quality=90))
    return out


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = synthetic_jpegs(args.count)
    mb = sum(d.numel() for d in data) / 2**20
    print(f"{args.count} JPEGs, 500x375, {mb:.1f} MB; torch threads {torch.get_num_threads()}")
    cpu = timed(lambda: [decode_jpeg(d) for d in data], args.repeats)
    print(f"  CPU decode (torchvision, one image at a time): {args.count / cpu:8.0f} images/s")
    if args.device == "cuda" and torch.cuda.is_available():

        def gpu() -> None:
            decode_jpeg(data, device="cuda")
            torch.cuda.synchronize()

        t = timed(gpu, args.repeats)
        print(f"  GPU decode (nvJPEG, batched):                  {args.count / t:8.0f} images/s")
    elif args.device == "cuda":
        print("  GPU decode: no CUDA GPU here")


if __name__ == "__main__":
    main()
