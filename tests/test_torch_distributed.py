"""fastopt.torch inside torch.distributed (gloo, 2 CPU processes): DDP replicas, ZeRO-1
(ZeroRedundancyOptimizer with fastopt.torch.AdamW as the local optimizer), FSDP2 shards. Each run
ends with the parameters one process gets from torch.optim.AdamW on the whole batch."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

from tests import dist_workers as w  # noqa: E402


def results(fn, tmp_path, *args):
    out = w.launch(fn, str(tmp_path), *args)
    for r, res in enumerate(out):
        assert "error" not in res, f"rank {r} failed:\n{res['error']}"
    return out


def assert_close(got, expected, rtol=1e-10):
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
def test_ddp_replicas_follow_one_process(tmp_path, flat):
    out = results(w.ddp, tmp_path, flat)
    assert_close(out[0]["params"], w.reference()[0])
    assert all(torch.equal(a, b) for a, b in zip(out[0]["params"], out[1]["params"]))
    if flat:
        assert out[0]["calls"] == 1


@pytest.mark.parametrize("bucket_view", [False, True], ids=["copies", "bucket-view"])
def test_zero_redundancy_optimizer_shards_state_and_resumes(tmp_path, bucket_view):
    out = results(w.zero, tmp_path, bucket_view)
    assert_close(out[0]["params"], w.reference()[0])
    assert all(torch.equal(a, b) for a, b in zip(out[0]["params"], out[1]["params"]))
    # each rank holds the AdamW moments of its own shard only: together, exactly the model's
    total = sum(p.numel() for p in w.make_model().parameters())
    assert out[0]["local_state"] + out[1]["local_state"] == 2 * total
    assert 0 < out[0]["local_state"] < 2 * total
    assert out[0]["consolidated_steps"] == [float(w.STEPS)] * 6
    assert_close(out[0]["resumed"], w.reference(steps=w.STEPS + 3)[0])


@pytest.mark.parametrize("offload", [False, True], ids=["fsdp2", "fsdp2-cpu-offload"])
def test_fsdp2_steps_local_shards(tmp_path, offload):
    out = results(w.fsdp2, tmp_path, offload, None)
    assert_close(out[0]["params"], w.reference()[0])
    assert all(torch.equal(a, b) for a, b in zip(out[0]["params"], out[1]["params"]))


@pytest.mark.parametrize("how", ["fused", "clip_grad_norm_"])
def test_fsdp2_global_norm_clipping_is_the_whole_models(tmp_path, how):
    """The fused clip's norm is all-reduced over the mesh (each rank's own shards would give a
    smaller norm); torch's clip_grad_norm_ on the DTensors then a step gives the same."""
    clip = 0.05  # small enough to clip every step
    out = results(w.fsdp2, tmp_path, False, clip if how == "fused" else -clip)
    expected, norms = w.reference(clip=clip, keras_clip=how == "fused")
    assert min(norms) > clip
    assert_close(out[0]["params"], expected)
    assert_close(out[1]["params"], expected)


@pytest.mark.parametrize("stage", [1, 2])
def test_deepspeed_zero_with_fastopt_as_client_optimizer(tmp_path, stage):
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed")
    out = results(w.deepspeed_zero, tmp_path, stage)
    expected, _ = w.reference(dtype=torch.float32)
    for r in range(w.WORLD):
        assert_close(out[r]["params"], expected, rtol=2e-5)
        assert len(out[r]["partitions"]) == 1  # one flat partition per group: one kernel call
    total = sum(p.numel() for p in w.make_model().parameters())
    assert sum(out[r]["partitions"][0][0] for r in range(w.WORLD)) >= total
