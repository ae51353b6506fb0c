#!/usr/bin/env python3
"""PyTorch reference for the Parrots PolyNet benchmark (issue 7).

This is the project's own PyTorch version of examples/polynet.yaml, written from
that YAML: the same layers, channel counts, kernel shapes (1x7/7x1, 1x3/3x1),
strides, paddings, BN eps 0.001, bias-free convolutions, the poly-3 modules'
weight sharing (the inception paths' convolutions are shared by F1, F2 and F3;
each application keeps its own batch norms and its own final 1x1 conv + BN), the
residual scales 1 - 0.3 i / 39 over the 40 A/B/C modules, 9x9 average pool,
dropout 0.2 and the 2048 -> 1000 linear layer.  It has 95,366,600 trainable
values, the figure `parrots check examples/polynet.yaml` prints.

scripts/gpu-check.sh runs it on the GPU machine (PyTorch 2.11, cu130 there), on
the same GPU and in the same run as Parrots' own benchmark, once per mode:

    python3 bench/pytorch_polynet.py --train            # fp32, TF32 convs/matmuls
    python3 bench/pytorch_polynet.py --train --bf16     # bf16 autocast, channels_last
    python3 bench/pytorch_polynet.py --infer            # eval mode, no_grad

Each prints one JSON line with the keys mode, precision, batch, images_per_s,
step_ms_median, peak_mem_gib, device (plus a few informative extras).  Defaults:
batch 32, 331x331, 5 warm-up steps then 20 timed steps; each step is timed with
CUDA events around it and the median is reported; images_per_s = batch /
median step time.  Peak memory is torch.cuda.max_memory_allocated() after
torch.cuda.reset_peak_memory_stats() taken once the model (and optimizer) sit on
the GPU, so it counts parameters, gradients, momentum and activations.
Training: SGD, lr 0.1, momentum 0.9, cross-entropy on one fixed synthetic batch
(normal-distributed images, uniform random labels; never all zeros).  cuDNN
autotuning (cudnn.benchmark) is on, as Parrots also picks its convolution
algorithms by measurement; the warm-up steps absorb it.

Without CUDA (or without PyTorch) the benchmark modes print a message to stderr
and exit 77, which gpu-check treats as "skipped".  `--check` needs only CPU
PyTorch: it builds the model, prints the parameter count, the number of conv /
BN applications and the output shape of a batch-1 forward pass at 331x331, and
exits 1 if any of them differs from Parrots' figures.
"""

import argparse
import json
import statistics
import sys

SKIP = 77

# Parrots' figures for examples/polynet.yaml (`parrots check`).
PARROTS_PARAMS = 95_366_600
PARROTS_PARAM_TENSORS = 1493
PARROTS_CONV_LAYERS = 537
PARROTS_BN_LAYERS = 537

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the dev machines have no PyTorch
    torch = None
    _IMPORT_ERROR = e

if torch is not None:

    BN_EPS = 1e-3

    def _pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    class ConvBN(nn.Module):
        """conv (no bias) + batch norm (eps 0.001) [+ ReLU]: the YAML's
        conv_bn_relu (relu=True) and conv_bn (relu=False)."""

        def __init__(self, cin, cout, kernel=1, stride=1, pad=0, relu=True):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, _pair(kernel), stride=stride,
                                  padding=_pair(pad), bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
            self.relu = relu

        def forward(self, x):
            x = self.bn(self.conv(x))
            return F.relu(x, inplace=True) if self.relu else x

    def cbr(cin, cout, kernel=1, stride=1, pad=0):
        return ConvBN(cin, cout, kernel, stride, pad, relu=True)

    class Stem(nn.Module):
        """3 x 331 x 331 -> 384 x 39 x 39."""

        def __init__(self):
            super().__init__()
            self.c1 = cbr(3, 32, 3, stride=2)            # 165
            self.c2 = cbr(32, 32, 3)                     # 163
            self.c3 = cbr(32, 64, 3, pad=1)              # 163
            self.m3_conv = cbr(64, 96, 3, stride=2)      # mixed 3a: 81
            self.m4_short = nn.Sequential(cbr(160, 64), cbr(64, 96, 3))   # 79
            self.m4_long = nn.Sequential(
                cbr(160, 64),
                cbr(64, 64, (7, 1), pad=(3, 0)),
                cbr(64, 64, (1, 7), pad=(0, 3)),
                cbr(64, 96, 3))
            self.m5_conv = cbr(192, 192, 3, stride=2)    # mixed 5a: 39

        def forward(self, x):
            c3 = self.c3(self.c2(self.c1(x)))
            m3 = torch.cat([F.max_pool2d(c3, 3, 2), self.m3_conv(c3)], 1)
            m4 = torch.cat([self.m4_short(m3), self.m4_long(m3)], 1)
            return torch.cat([self.m5_conv(m4), F.max_pool2d(m4, 3, 2)], 1)

    # The inception paths of each block type: a list of paths, each a list of
    # (out, kernel, pad) 1-stride convolutions, the first reading the block input.
    PATHS_A = [[(32, 1, 0)],
               [(32, 1, 0), (32, 3, 1)],
               [(32, 1, 0), (48, 3, 1), (64, 3, 1)]]                     # 384 -> 128
    PATHS_B = [[(192, 1, 0)],
               [(128, 1, 0), (160, (1, 7), (0, 3)), (192, (7, 1), (3, 0))]]  # 1152 -> 384
    PATHS_C = [[(192, 1, 0)],
               [(192, 1, 0), (224, (1, 3), (0, 1)), (256, (3, 1), (1, 0))]]  # 2048 -> 448

    class Paths(nn.Module):
        """The concatenated inception paths, applicable `copies` times: all
        applications share the convolutions; application k uses its own set
        of batch norms bns[k] (poly-3: copies=3; 2-way branches: copies=1)."""

        def __init__(self, cin, spec, copies=1):
            super().__init__()
            self.convs = nn.ModuleList()
            for path in spec:
                layers, c = nn.ModuleList(), cin
                for out, k, p in path:
                    layers.append(nn.Conv2d(c, out, _pair(k), padding=_pair(p), bias=False))
                    c = out
                self.convs.append(layers)
            self.bns = nn.ModuleList(
                nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(out, eps=BN_EPS) for out, _, _ in path)
                              for path in spec)
                for _ in range(copies))
            self.cout = sum(path[-1][0] for path in spec)

        def forward(self, x, copy=0):
            outs = []
            for convs, bns in zip(self.convs, self.bns[copy]):
                y = x
                for conv, bn in zip(convs, bns):
                    y = F.relu(bn(conv(y)), inplace=True)
                outs.append(y)
            return torch.cat(outs, 1)

    class TwoWay(nn.Module):
        """y = relu(x + s F(x) + s G(x)); F, G = paths + 1x1 conv + BN, own weights."""

        def __init__(self, width, spec, scale):
            super().__init__()
            self.scale = scale
            self.f_paths = Paths(width, spec)
            self.f_out = ConvBN(self.f_paths.cout, width, relu=False)
            self.g_paths = Paths(width, spec)
            self.g_out = ConvBN(self.g_paths.cout, width, relu=False)

        def forward(self, x):
            f = self.f_out(self.f_paths(x))
            g = self.g_out(self.g_paths(x))
            return F.relu(x + self.scale * (f + g), inplace=True)

    class Poly3(nn.Module):
        """a1 = F1(x), a2 = F2(relu(a1)), a3 = F3(relu(a2)); y = relu(x + s (a1+a2+a3)).
        F1..F3 share the paths' convolutions; each has its own BNs and its own
        final 1x1 conv + BN."""

        def __init__(self, width, spec, scale):
            super().__init__()
            self.scale = scale
            self.paths = Paths(width, spec, copies=3)
            self.outs = nn.ModuleList(ConvBN(self.paths.cout, width, relu=False) for _ in range(3))

        def forward(self, x):
            a1 = self.outs[0](self.paths(x, 0))
            a2 = self.outs[1](self.paths(F.relu(a1), 1))
            a3 = self.outs[2](self.paths(F.relu(a2), 2))
            return F.relu(x + self.scale * (a1 + a2 + a3), inplace=True)

    class ReductionA(nn.Module):
        """384 x 39 x 39 -> 1152 x 19 x 19."""

        def __init__(self):
            super().__init__()
            self.p1 = cbr(384, 384, 3, stride=2)
            self.p2 = nn.Sequential(cbr(384, 256), cbr(256, 256, 3, pad=1), cbr(256, 384, 3, stride=2))

        def forward(self, x):
            return torch.cat([F.max_pool2d(x, 3, 2), self.p1(x), self.p2(x)], 1)

    class ReductionB(nn.Module):
        """1152 x 19 x 19 -> 2048 x 9 x 9."""

        def __init__(self):
            super().__init__()
            self.p1 = nn.Sequential(cbr(1152, 256), cbr(256, 384, 3, stride=2))
            self.p2 = nn.Sequential(cbr(1152, 256), cbr(256, 256, 3, stride=2))
            self.p3 = nn.Sequential(cbr(1152, 256), cbr(256, 256, 3, pad=1), cbr(256, 256, 3, stride=2))

        def forward(self, x):
            return torch.cat([F.max_pool2d(x, 3, 2), self.p1(x), self.p2(x), self.p3(x)], 1)

    class PolyNet(nn.Module):
        def __init__(self, num_classes=1000, dropout=0.2):
            super().__init__()

            def scale(i):  # residual module i = 0..39 over stages A, B and C
                return 1.0 - 0.3 * i / 39

            self.stem = Stem()
            self.stage_a = nn.Sequential(*[TwoWay(384, PATHS_A, scale(i)) for i in range(10)])
            self.reduction_a = ReductionA()
            # B and C alternate poly-3 and 2-way, poly-3 first.
            self.stage_b = nn.Sequential(*[
                (Poly3 if i % 2 == 0 else TwoWay)(1152, PATHS_B, scale(10 + i)) for i in range(20)])
            self.reduction_b = ReductionB()
            self.stage_c = nn.Sequential(*[
                (Poly3 if i % 2 == 0 else TwoWay)(2048, PATHS_C, scale(30 + i)) for i in range(10)])
            self.dropout = nn.Dropout(dropout)
            self.logits = nn.Linear(2048, num_classes)

        def forward(self, x):
            x = self.stem(x)
            x = self.stage_a(x)
            x = self.reduction_a(x)
            x = self.stage_b(x)
            x = self.reduction_b(x)
            x = self.stage_c(x)
            x = F.avg_pool2d(x, 9, stride=1)          # 2048 x 1 x 1
            x = torch.flatten(self.dropout(x), 1)
            return self.logits(x)


def trainable_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check(args):
    """CPU architecture check against Parrots' figures; exit 1 on a mismatch."""
    torch.manual_seed(0)
    model = PolyNet().eval()
    n_params = trainable_params(model)
    n_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    n_running = sum(b.numel() for n, b in model.named_buffers() if "running_" in n)
    counts = {"conv": 0, "bn": 0}

    def hook(kind):
        def f(_m, _i, _o):
            counts[kind] += 1
        return f

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook("conv"))
        elif isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(hook("bn"))
    x = torch.randn(1, 3, args.size, args.size)
    with torch.no_grad():
        y = model(x)
    ok = (n_params == PARROTS_PARAMS and n_tensors == PARROTS_PARAM_TENSORS
          and counts["conv"] == PARROTS_CONV_LAYERS and counts["bn"] == PARROTS_BN_LAYERS
          and tuple(y.shape) == (1, 1000) and bool(torch.isfinite(y).all()))
    print(json.dumps({
        "mode": "check", "params": n_params, "parrots_params": PARROTS_PARAMS,
        "param_tensors": n_tensors, "running_stat_values": n_running,
        "conv_applications": counts["conv"], "bn_applications": counts["bn"],
        "output_shape": list(y.shape), "size": args.size, "ok": ok,
        "torch": torch.__version__}))
    return 0 if ok else 1


def bench(args):
    if not torch.cuda.is_available():
        print("SKIP: pytorch_polynet.py: no CUDA device visible to PyTorch "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        return SKIP
    dev = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    torch.manual_seed(args.seed)

    mode = "train" if args.train else "infer"
    precision = "bf16" if args.bf16 else "fp32"
    fmt = torch.channels_last if args.bf16 else torch.contiguous_format

    model = PolyNet().to(dev, memory_format=fmt)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    images = torch.randn(args.batch, 3, args.size, args.size, device=dev, generator=gen)
    images = images.contiguous(memory_format=fmt)
    labels = torch.randint(0, 1000, (args.batch,), device=dev, generator=gen)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=args.bf16)

    if args.train:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = loss_fn(model(images), labels)
            loss.backward()
            opt.step()
            return loss
    else:
        model.eval()

        def step():
            with torch.no_grad(), autocast:
                return model(images)

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(args.steps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(args.steps)]
    out = None
    for s, e in zip(starts, ends):
        s.record()
        out = step()
        e.record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    span_ms = starts[0].elapsed_time(ends[-1])
    med = statistics.median(times)
    result = {
        "mode": mode,
        "precision": precision,
        "batch": args.batch,
        "images_per_s": round(args.batch * 1000.0 / med, 2),
        "step_ms_median": round(med, 3),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
        "device": torch.cuda.get_device_name(),
        "step_ms_min": round(min(times), 3),
        "step_ms_max": round(max(times), 3),
        "images_per_s_wall": round(args.batch * args.steps * 1000.0 / span_ms, 2),
        "size": args.size,
        "warmup": args.warmup,
        "steps": args.steps,
        "tf32": True,
        "channels_last": bool(args.bf16),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "params": trainable_params(model),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
    }
    if args.train:
        loss = float(out.detach().float())
        result["last_loss"] = round(loss, 4) if loss == loss and abs(loss) != float("inf") else str(loss)
    print(json.dumps(result), flush=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch reference PolyNet (same network as examples/polynet.yaml): "
                    "benchmark one mode on CUDA and print one JSON line; exits 77 without CUDA.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--train", action="store_true",
                   help="training step: SGD lr 0.1 momentum 0.9, cross-entropy, synthetic data")
    g.add_argument("--infer", action="store_true", help="inference: eval mode, no_grad")
    g.add_argument("--check", action="store_true",
                   help="CPU only: parameter count, conv/BN applications and output shape at batch 1, "
                        "compared with Parrots' figures (exit 1 on a mismatch)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast and channels_last (default: fp32 with TF32 convolutions/matmuls)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps before timing (default 5)")
    p.add_argument("--size", type=int, default=331,
                   help="image side (default 331; the 9x9 average pool needs 331)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and weights")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="leave cudnn.benchmark off (default: on, autotuned during warm-up)")
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--batch and --steps must be >= 1, --warmup >= 0")
    if torch is None:
        print(f"SKIP: pytorch_polynet.py: PyTorch is not installed ({_IMPORT_ERROR})", file=sys.stderr)
        return SKIP
    return check(args) if args.check else bench(args)


if __name__ == "__main__":
    sys.exit(main())
