"""Rank functions for the torch.distributed tests (gloo, 2 CPU processes), and the launcher that
runs them with a timeout. Each rank writes what it ends with to ``out/rank<r>.pt``; the tests
compare that with one process training on the whole batch."""
from __future__ import annotations

import os
import socket
import traceback

import torch
import torch.distributed as dist

WORLD = 2
STEPS = 6
LR = 1e-2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                               torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(torch.float64)


def batch(step, rank=None, dtype=torch.float64):
    """The step's whole batch (16 rows), or rank ``rank``'s half of it."""
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(16, 8, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(16, 3, generator=g, dtype=torch.float64).to(dtype)
    if rank is None:
        return x, y
    half = 16 // WORLD
    return x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]


def loss_of(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def reference(steps=STEPS, clip=None, keras_clip=False, dtype=torch.float64, **hyper):
    """One process, torch.optim.AdamW on the whole batch (with ``clip``, after
    ``clip_grad_norm_``, or with ``keras_clip`` Keras's ``g * clip / max(norm, clip)`` that
    fastopt's ``global_clipnorm`` fuses; torch divides by ``norm + 1e-6``): what every rank must
    end with, and the gradient norms."""
    model = make_model().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, foreach=False, **hyper)
    norms = []
    for step in range(steps):
        opt.zero_grad()
        loss_of(model, *batch(step, dtype=dtype)).backward()
        if clip is not None and keras_clip:
            norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())).item()
            for p in model.parameters():
                p.grad.mul_(clip / max(norm, clip))
            norms.append(norm)
        elif clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
    return [p.detach().clone() for p in model.parameters()], norms


def launch(fn, out, *args, timeout=180):
    """Run ``fn(rank, out, *args)`` on WORLD spawned processes; raise if one fails or hangs."""
    import torch.multiprocessing as mp
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(free_port())
    ctx = mp.start_processes(_entry, args=(fn, out, args), nprocs=WORLD, join=False, start_method="spawn")
    try:
        import time
        deadline = time.monotonic() + timeout
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{fn.__name__} did not finish within {timeout} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)
    return [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=False) for r in range(WORLD)]


def _entry(rank, fn, out, args):
    os.environ.update(OMP_NUM_THREADS="1", RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = fn(rank, out, *args)
        torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    except BaseException:
        torch.save({"error": traceback.format_exc()}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------- ranks
def ddp(rank, out, flat):
    import fastopt.torch as ft
    from torch.nn.parallel import DistributedDataParallel
    model = DistributedDataParallel(make_model())
    opt = ft.AdamW(model.parameters(), lr=LR, flat=flat)
    for step in range(STEPS):
        opt.zero_grad()
        loss_of(model, *batch(step, rank)).backward()  # DDP averages the gradients
        opt.step()
    return {"params": [p.detach().clone() for p in model.module.parameters()],
            "calls": len(opt._inner._plan.calls)}


def zero(rank, out, bucket_view):
    """ZeRO-1: each rank keeps the AdamW state of its shard of the parameters; after STEPS steps
    the consolidated state_dict is loaded into a fresh ZeRO optimizer that trains 3 steps more."""
    import fastopt.torch as ft
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel
    model = DistributedDataParallel(make_model())
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=ft.AdamW, lr=LR,
                                  parameters_as_bucket_view=bucket_view)
    for step in range(STEPS):
        opt.zero_grad()
        loss_of(model, *batch(step, rank)).backward()
        opt.step()
    params = [p.detach().clone() for p in model.module.parameters()]
    local_state = sum(t.numel() for st in opt.optim.state.values() for t in st.values() if t.dim() > 0)
    opt.consolidate_state_dict(to=0)
    full = opt.state_dict() if rank == 0 else None
    box = [full]
    dist.broadcast_object_list(box, src=0)
    steps = sorted(float(st["step"]) for st in box[0]["state"].values())
    fresh = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=ft.AdamW, lr=LR,
                                    parameters_as_bucket_view=bucket_view)
    fresh.load_state_dict(box[0])  # (it sets the other ranks' entries of the dict to None)
    for step in range(STEPS, STEPS + 3):
        fresh.zero_grad()
        loss_of(model, *batch(step, rank)).backward()
        fresh.step()
    return {"params": params, "local_state": local_state,
            "resumed": [p.detach().clone() for p in model.module.parameters()],
            "consolidated_steps": steps}


def fsdp2(rank, out, offload, clip):
    """FSDP2 on a CPU mesh: parameters and gradients are DTensors; fastopt.torch steps their local
    shards. With ``clip``: fastopt's fused ``global_clipnorm`` (its norm all-reduced over the mesh),
    or ``-clip``: torch's ``clip_grad_norm_`` on the DTensors, then the step."""
    import fastopt.torch as ft
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
    mesh = init_device_mesh("cpu", (WORLD,))
    model = make_model()
    kwargs = {"offload_policy": CPUOffloadPolicy(pin_memory=False)}  # no accelerator to pin for if offload else {}
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh, **kwargs)
    fully_shard(model, mesh=mesh, **kwargs)
    opt = ft.AdamW(model.parameters(), lr=LR, global_clipnorm=clip if clip and clip > 0 else None)
    norms = []
    for step in range(STEPS):
        opt.zero_grad()
        loss_of(model, *batch(step, rank)).backward()
        if clip and clip < 0:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), -clip).full_tensor()))
        opt.step()
    return {"params": [p.full_tensor().detach().clone() for p in model.parameters()], "norms": norms}


def deepspeed_zero(rank, out, stage):
    """DeepSpeed ZeRO stage 1/2 with fastopt.torch.AdamW as the client optimizer (fp32): DeepSpeed
    gives it one flat fp32 partition per group, fastopt's best case."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    import fastopt.torch as ft
    model = make_model().to(torch.float32)
    opt = ft.AdamW(model.parameters(), lr=LR)
    config = {"train_micro_batch_size_per_gpu": 16 // WORLD, "zero_optimization": {"stage": stage},
              "zero_force_ds_cpu_optimizer": False, "zero_allow_untested_optimizer": True}
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=config)
    for step in range(STEPS):
        engine.backward(loss_of(engine, *batch(step, rank, torch.float32)))
        engine.step()
    return {"params": [p.detach().clone() for p in model.parameters()],
            "partitions": [tuple(p.shape) for p in opt._tensors]}
