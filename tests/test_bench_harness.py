"""``python -m fastopt bench``'s harness: the rows it returns (timing itself is not asserted)."""
from __future__ import annotations

import io

import pytest

from fastopt._bench import step


@pytest.mark.parametrize("grads", ["normal", "denormal"])
def test_run_labels_every_variant_and_checks_agreement(grads):
    out = io.StringIO()
    rows = step.run(sizes=[1000], optimizers=["Adam", "Lamb"], impls=["fastopt", "numpy"], backends=["numba"],
                     repeat_time=0.002, out=out, grads=grads, flush_denormals=True)
    timed = [r for r in rows if "time_us" in r]
    for name in ("Adam", "Lamb"):
        labels = [r["impl"] for r in timed if r["optimizer"] == name]
        # fastopt first (the speedup reference), its flushed variant next, then the competitors
        assert labels == ["fastopt[numba]", "fastopt[numba,ftz]", "numpy"]
    for r in timed:
        # flushing reads denormal gradients as 0: Lamb's normalized update then differs (as it should)
        assert r["agrees"] or (grads == "denormal" and r["impl"].endswith(",ftz]")), r
        assert r["time_us"] > 0 and r["gbps"] > 0 and r["pct_ceiling"] > 0
        assert r["faults_per_step"] is None or r["faults_per_step"] >= 0
    assert {r["impl"] for r in rows if "time_us" not in r and "gbps" in r} == {"ceiling(update)"}
    text = out.getvalue()
    assert "fastopt[numba,ftz]" in text
    assert ("RESULTS DIFFER" in text) == (grads == "denormal" and not all(r["agrees"] for r in timed))


def test_bench_zero_runs_two_ranks_and_halves_the_state():
    pytest.importorskip("torch")
    from fastopt._bench import zero
    out = io.StringIO()
    rows = zero.main(steps=2, out=out, shapes=[(64, 32), (32,), (32, 16), (16,)])
    single, r0, r1 = rows
    assert single["owned"] == r0["owned"] + r1["owned"] == 64 * 32 + 32 + 32 * 16 + 16
    assert r0["state_bytes"] + r1["state_bytes"] == single["state_bytes"]
    assert "ZeRO-1 rank 1" in out.getvalue()


def test_measure_flags_a_spread_it_cannot_bring_under_the_bound():
    """A row whose IQR stays over the bound is 'noisy' (and printed without a ratio); a steady one is not."""
    import itertools
    import time as _time
    from fastopt._bench.timing import measure
    waits = itertools.cycle([0.0, 0.004])  # every other call 4 ms: an IQR far over 20% of the median
    stats = measure({"jumpy": lambda: _time.sleep(next(waits)), "steady": lambda: _time.sleep(0.002)},
                    repeat_time=0.05, min_samples=4, warmup=1)
    assert stats["jumpy"]["noisy"] and stats["jumpy"]["samples"] >= 4
    assert not stats["steady"]["noisy"]


def test_bench_loop_quick_numpy_mlp_prints_every_variant_and_no_zero_ratio(tmp_path):
    """``bench-loop --quick``: each variant in its own subprocess, a row each, ratios only where measured."""
    import json
    import subprocess
    import sys
    path = tmp_path / "loop.json"
    proc = subprocess.run([sys.executable, "-m", "fastopt", "bench-loop", "--quick", "--scenarios", "numpy-mlp",
                           "--json", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "GOMP_SPINCOUNT" in text and "0.00x" not in text
    rows = json.loads(path.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["default", "1-thread", "all-threads", "numpy-adam"]
    for r in rows:
        assert "error" not in r, r
        assert r["scenario"] == "numpy-mlp" and r["params"] == 152_650 and r["median_us"] > 0 and r["n"] == 30
        assert f"numpy-mlp        {r['variant']}" in text
    assert rows[1]["threads"] == 1 and rows[2]["adaptive"] is False and rows[0]["adaptive"] is True
    default = rows[0]
    for key in ("vs_best", "vs_ref"):  # a ratio, or the reason there is none
        assert default[key].endswith("x") or default[key].startswith("noisy"), default[key]


def test_bench_loop_skips_torch_scenario_without_torch(monkeypatch):
    import io
    import sys
    from fastopt._bench import loop
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    out = io.StringIO()
    rows = loop.main(scenarios=["torch-mlp"], out=out)
    assert rows == [{"scenario": "torch-mlp", "skipped": "torch not installed"}]
    assert "torch-mlp        skipped: torch not installed" in out.getvalue()
