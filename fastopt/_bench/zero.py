"""``python -m fastopt bench-zero``: ZeRO-1 (``ZeroRedundancyOptimizer`` with ``fastopt.torch.AdamW``
as the local optimizer) on 2 gloo ranks against one process, on GPT-2 small's parameter shapes.

Each rank owns about half of the AdamW state and steps only its shard; ZeRO then broadcasts the
updated parameters. Reported per rank: the median of the local optimizer step, of the whole
``ZeroRedundancyOptimizer.step`` (with the broadcast) and the state bytes it holds; and the same
step in one process. The ranks share the machine's cores (fastopt's default thread count under a
launcher), so on 2 cores each rank steps with 1 thread against the single process's 2.
"""
from __future__ import annotations

import os
import sys
import time

WORLD = 2


def _state_bytes(opt):
    return sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values() if t.dim() > 0)


def _model(shapes):
    import torch
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    return params


def _median_ms(fn, steps):
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e3, (times[-1] - times[0]) * 1e3


def _rank(rank, steps, queue, shapes):
    import torch
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    import fastopt
    import fastopt.torch as ft
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        params = _model(shapes)
        opt = ZeroRedundancyOptimizer(params, optimizer_class=ft.AdamW, lr=1e-3)
        opt.step()  # allocate and warm up
        local, local_spread = _median_ms(opt.optim.step, steps)
        dist.barrier()
        whole, whole_spread = _median_ms(opt.step, steps)
        owned = sum(p.numel() for g in opt.optim.param_groups for p in g["params"])
        queue.put({"rank": rank, "threads": fastopt.get_num_threads(), "local_ms": local,
                   "local_spread_ms": local_spread, "zero_ms": whole, "zero_spread_ms": whole_spread,
                   "state_bytes": _state_bytes(opt.optim), "owned": owned})
    finally:
        dist.destroy_process_group()


def main(steps=10, out=sys.stdout, shapes=None):
    """Run the benchmark (on ``shapes``, default GPT-2 small's); print and return the rows."""
    import socket

    import torch
    import torch.multiprocessing as mp

    import fastopt
    import fastopt.torch as ft
    from fastopt._bench.torch_step import gpt2_small_shapes
    say = (lambda *a: print(*a, file=out, flush=True)) if out is not None else (lambda *a: None)
    shapes = gpt2_small_shapes() if shapes is None else shapes
    n = sum(int(torch.Size(s).numel()) for s in shapes)
    # one process
    params = _model(shapes)
    opt = ft.AdamW(params, lr=1e-3, flat=True)
    opt.step()
    single, single_spread = _median_ms(opt.step, steps)
    rows = [{"setup": "1 process", "threads": fastopt.get_num_threads(), "step_ms": single,
             "spread_ms": single_spread, "state_bytes": _state_bytes(opt), "owned": n}]
    del opt, params
    # two ranks, sharing the cores as a launcher's ranks do
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "LOCAL_WORLD_SIZE": str(WORLD)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        queue = mp.get_context("spawn").SimpleQueue()
        ctx = mp.start_processes(_rank, args=(steps, queue, shapes), nprocs=WORLD, join=False, start_method="spawn")
        ctx.join(timeout=600)
        ranks = sorted((queue.get() for _ in range(WORLD)), key=lambda r: r["rank"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for r in ranks:
        rows.append({"setup": f"ZeRO-1 rank {r['rank']}", "threads": r["threads"], "step_ms": r["local_ms"],
                     "spread_ms": r["local_spread_ms"], "zero_ms": r["zero_ms"],
                     "state_bytes": r["state_bytes"], "owned": r["owned"]})
    say(f"AdamW on {'GPT-2 small' if shapes == gpt2_small_shapes() else 'these'} shapes ({len(shapes)} arrays, {n:,} float32 parameters), torch "
        f"{torch.__version__}, median of {steps} steps (spread: max - min)")
    say(f"{'setup':<16} {'threads':>7} {'optimizer step ms':>18} {'ZeRO step ms':>13} {'state MB':>9} {'params owned':>13}")
    for r in rows:
        zero = f"{r['zero_ms']:.1f}" if "zero_ms" in r else "-"
        say(f"{r['setup']:<16} {r['threads']:>7} {r['step_ms']:>10.1f} ± {r['spread_ms']:<5.1f} {zero:>13} "
            f"{r['state_bytes'] / 1e6:>9.1f} {r['owned']:>13,}")
    return rows


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=10)


def main_from_args(args):
    try:
        import torch.distributed as dist
    except ImportError:
        print("bench-zero needs PyTorch: pip install torch", file=sys.stderr)
        return 2
    if not dist.is_available() or not dist.is_gloo_available():
        print("bench-zero needs torch.distributed with gloo", file=sys.stderr)
        return 2
    main(args.steps)
    return 0
