"""``python -m fastopt bench-torch``: the optimizer step of a real model's parameters in PyTorch.

Implementations, all on the same parameter shapes and thread count, timed interleaved:

- ``fastopt.torch`` per tensor (one kernel call per parameter) and ``fastopt.torch`` flat
  (``flatten_parameters``: one kernel call for the model);
- ``torch.optim`` with ``foreach=False`` (for-loop), ``foreach=True`` and ``fused=True``;
- DeepSpeed's ``DeepSpeedCPUAdam`` when it imports (Adam/AdamW only).

Models: ``gpt2`` (GPT-2 small's 148 arrays, 124M parameters), ``transformer`` (a small
transformer's 196 arrays, 13.8M parameters) and ``small-arrays`` (500 arrays of 2,048 elements:
per-call overhead dominates). ``--global-clipnorm`` runs the clip + step pipeline: fastopt's
fused clip (``global_clipnorm``) against ``torch.nn.utils.clip_grad_norm_`` then the step.
"""
from __future__ import annotations

import gc
import sys

import numpy as np

from fastopt._bench.impls import Unsupported, bytes_per_element, competitor_step
from fastopt._bench.timing import measure

IMPLS = ("fastopt-flat", "fastopt-tensor", "torch-fused", "torch-foreach", "torch-forloop", "deepspeed")


def gpt2_small_shapes():
    """Parameter shapes of GPT-2 small (124,439,808 parameters in 148 arrays)."""
    d, vocab, ctx, layers = 768, 50257, 1024, 12
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,),
                   (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return shapes + [(d,), (d,)]


def transformer_shapes(d=256, layers=16, vocab=4000, ctx=512):
    """A small transformer's parameter shapes: 196 arrays, 13.8M parameters (d=256, 16 layers)."""
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,),
                   (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return shapes + [(d,), (d,)]


MODELS = {"gpt2": gpt2_small_shapes, "transformer": transformer_shapes,
          "small-arrays": lambda: [(2048,)] * 500}


def make_torch_stepper(impl, name, shapes, hyper, dtype="float32", global_clipnorm=None):
    """A zero-argument step of ``impl`` over fresh parameters of ``shapes`` with gradients set."""
    import torch

    import fastopt
    import fastopt.torch as ft
    torch.set_num_threads(fastopt.get_num_threads())
    tdtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=tdtype) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=tdtype) * 1e-3
    if impl not in ("fastopt-flat", "fastopt-tensor"):
        if impl not in IMPLS:
            raise ValueError(f"unknown implementation {impl!r}; choose from {IMPLS}")
        return competitor_step(impl, name, params, hyper, global_clipnorm)
    if impl == "fastopt-flat":
        ft.flatten_parameters(params)
    fused_clip = {} if global_clipnorm is None else {"global_clipnorm": global_clipnorm}
    opt = getattr(ft, name)(params, **hyper, **fused_clip)

    def fastopt_step(_step=opt.step):
        _step()
    fastopt_step.keep = (opt, params)  # the optimizer holds the parameters
    return fastopt_step


def run(model="gpt2", name="Adam", impls=IMPLS, repeat_time=1.0, out=sys.stdout, global_clipnorm=None):
    """Time each implementation's step on ``model``'s shapes; print and return the rows."""
    import torch

    import fastopt
    shapes = MODELS[model]()
    n = sum(int(np.prod(s)) for s in shapes)
    hyper = {"lr": 1e-3}
    bpe = bytes_per_element(name, hyper, 4)
    steps, rows = {}, []
    for impl in impls:
        try:
            steps[impl] = make_torch_stepper(impl, name, shapes, hyper, global_clipnorm=global_clipnorm)
        except Unsupported as exc:
            rows.append({"impl": impl, "skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"})
    say = (lambda *a: print(*a, file=out, flush=True)) if out is not None else (lambda *a: None)
    what = name if global_clipnorm is None else f"global-norm clip ({global_clipnorm}) + {name}"
    say(f"{what} step on {model} ({len(shapes)} arrays, {n:,} float32 parameters), "
        f"{fastopt.get_num_threads()} threads, torch {torch.__version__}, interleaved medians")
    stats = measure(steps, repeat_time=repeat_time, min_samples=5)
    ref = stats.get("fastopt-flat")
    for impl, st in stats.items():
        t = st["median_s"]
        noisy = st["noisy"] or (ref is not None and ref["noisy"])
        rows.append({"impl": impl, "model": model, "optimizer": name, "arrays": len(shapes), "elements": n,
                     "time_ms": t * 1e3, "gbps": bpe * n / t / 1e9, "iqr_pct": 100 * st["iqr_s"] / t,
                     "noisy": st["noisy"], "vs_flat": t / ref["median_s"] if ref and not noisy else None})
    order = {impl: k for k, impl in enumerate(impls)}
    rows.sort(key=lambda r: order.get(r["impl"], 99))
    say(f"{'impl':<16} {'ms/step':>9} {'+-IQR':>6} {'GB/s':>7} {'time / fastopt-flat':>20}")
    for r in rows:
        if "skipped" in r:
            say(f"{r['impl']:<16} {'-':>9} {'-':>7} {'-':>20}  {r['skipped']}")
        else:
            ratio = "noisy (IQR > 20%)" if r["vs_flat"] is None else f"{r['vs_flat']:.3g}x"
            say(f"{r['impl']:<16} {r['time_ms']:>9.3f} {r['iqr_pct']:>5.0f}% {r['gbps']:>7.1f} {ratio:>20}")
    del steps
    gc.collect()
    return rows


def add_arguments(parser):
    parser.add_argument("--model", choices=tuple(MODELS), default="gpt2")
    parser.add_argument("--optimizer", default="Adam", choices=("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"))
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeat-time", type=float, default=1.0)
    parser.add_argument("--global-clipnorm", type=float, default=None,
                        help="clip all gradients to this global norm before the step (fastopt: fused)")


def main_from_args(args):
    import fastopt
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench-torch needs PyTorch: pip install torch", file=sys.stderr)
        return 2
    if args.threads:
        fastopt.set_num_threads(args.threads)
    impls = [x.strip() for x in args.impls.split(",") if x.strip()]
    bad = [x for x in impls if x not in IMPLS]
    if bad:
        print(f"unknown implementations {bad}; choose from {', '.join(IMPLS)}", file=sys.stderr)
        return 2
    run(args.model, args.optimizer, impls, args.repeat_time, global_clipnorm=args.global_clipnorm)
    return 0
