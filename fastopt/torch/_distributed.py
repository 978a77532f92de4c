"""Helpers for fastopt.torch across processes: which DTensors (FSDP2) are sharded over which mesh
dimensions (``_sharded_dims``), and the all-reduce that turns the sums of squares of the local
shards into the whole model's, for the fused ``global_clipnorm`` and its finite check
(``_all_reduce_sums``). DDP, ZeroRedundancyOptimizer and DeepSpeed need nothing here: the
adapter follows what they change (see ``_adapter``)."""
from __future__ import annotations

import torch


def _sharded_dims(tensors):
    """``(mesh, dims)`` of the first DTensor among ``tensors`` sharded over some mesh dimensions
    (their sums of squares must be all-reduced over those), or None."""
    for t in tensors:
        placements = getattr(t, "placements", None)
        if placements is not None:
            dims = [i for i, pl in enumerate(placements) if pl.is_shard()]
            if dims:
                return t.device_mesh, dims
    return None


def _all_reduce_sums(mesh, dims):
    """Sums of squares of local shards -> the sums over every shard (float64, one all-reduce per
    sharded mesh dimension)."""
    import torch.distributed as dist

    def reduce(sums):
        t = torch.tensor(sums, dtype=torch.float64)
        for d in dims:
            dist.all_reduce(t, group=mesh.get_group(d))
        return t.tolist()
    return reduce
