"""``python -m fastopt demo``: the NumPy MLP trains with every optimizer, the table and the PNG come out."""
from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

import fastopt  # noqa: E402
from fastopt import _demo  # noqa: E402
from fastopt.__main__ import main  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One in-process run of every optimizer for 2 epochs: (results, printed text, PNG path)."""
    png = tmp_path_factory.mktemp("demo") / "curves.png"
    stdout, progress = io.StringIO(), io.StringIO()
    results = _demo.run(epochs=2, out=png, stdout=stdout, progress=progress)
    return results, stdout.getvalue(), progress.getvalue(), png


def table_rows(text):
    """The data rows of the printed Markdown table, split into cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| optimizer")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_table_has_a_row_per_optimizer_with_finite_numbers(demo_run):
    results, text, _, _ = demo_run
    rows = table_rows(text)
    assert [row[0] for row in rows] == [label for label, _, _ in _demo.OPTIMIZERS.values()]
    for row in rows:
        lr, loss, acc, step_us = float(row[1]), float(row[2]), float(row[3].rstrip("%")), float(row[4])
        assert all(math.isfinite(v) for v in (lr, loss, acc, step_us)), row
        assert lr > 0 and loss > 0 and 0 <= acc <= 100 and step_us > 0, row
    assert [r.name for r in results] == list(_demo.OPTIMIZERS)


def test_every_optimizer_lowers_the_loss_and_learns(demo_run):
    results, _, _, _ = demo_run
    for r in results:
        assert len(r.losses) == 3, r.name                      # before training, after epochs 1 and 2
        assert np.isfinite(r.losses).all(), r.name
        assert r.losses[2] < r.losses[1] < r.losses[0], (r.name, r.losses)
        assert r.test_accuracy > 0.3, (r.name, r.test_accuracy)   # chance is 0.1
    assert {r.name: r for r in results}["adam"].test_accuracy > 0.5


def test_png_is_written(demo_run):
    _, text, _, png = demo_run
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {png}" in text


def test_progress_without_a_tty_prints_a_line_per_optimizer(demo_run):
    _, _, progress, _ = demo_run
    lines = progress.splitlines()
    assert len(lines) == len(_demo.OPTIMIZERS) and "\r" not in progress
    assert all("2 epochs" in line for line in lines)


def test_same_weights_and_batches_for_every_optimizer():
    """An optimizer listed twice trains identically: every run starts from the same weights and
    sees the same batches; another seed changes both."""
    def losses(seed):
        quiet = io.StringIO()
        return [r.losses for r in _demo.run(epochs=1, optimizers=["sgd", "sgd"], out=None, seed=seed,
                                            stdout=quiet, progress=quiet)]

    first, again = losses(0)
    assert first == again
    assert losses(1)[0] != first


def test_the_model_steps_in_one_kernel_call():
    """The gradient views of one flat buffer make one fused call for the whole model."""
    _, params = fastopt.flatten(_demo.init_weights((64, 16, 10), np.random.default_rng(0)))
    _, grads = fastopt.flatten([np.ones_like(p) for p in params])
    opt = fastopt.Adam(params, lr=_demo.schedule_for(1e-3, 10))
    opt.step(grads)
    assert len(opt._plan.calls) == 1


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    init = [a.astype(np.float64) for a in _demo.init_weights((5, 4, 3), rng)]
    x, y = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    _, params = fastopt.flatten(init)
    _, grads = fastopt.flatten([np.zeros_like(p) for p in params])
    acts = _demo.forward(params, x)
    _demo.backward(params, acts, _demo.cross_entropy(acts[-1], y)[1], grads)
    for p, g in zip(params, grads):
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = _demo.cross_entropy(_demo.forward(params, x)[-1], y)[0]
            p[i] = old - 1e-6
            down = _demo.cross_entropy(_demo.forward(params, x)[-1], y)[0]
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8)


def test_missing_scikit_learn_exits_2_with_the_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)   # makes `import sklearn` raise ImportError
    assert main(["demo", "--epochs", "1"]) == 2
    assert 'pip install "fastopt[demo]"' in capsys.readouterr().err


def test_missing_matplotlib_prints_the_table_and_skips_the_png(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "no.png"
    assert main(["demo", "--epochs", "1", "--optimizers", "sgd", "--out", str(png)]) == 0
    out, err = capsys.readouterr()
    assert table_rows(out)[0][0] == "SGD"
    assert 'pip install "fastopt[demo]"' in err and not png.exists()


def test_unknown_optimizer_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--optimizers", "adam,lion"])
    assert exc.value.code == 2
    assert "lion" in capsys.readouterr().err


def test_command_line(tmp_path):
    png = tmp_path / "demo.png"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "fastopt", "demo", "--epochs", "1", "--optimizers", "adam",
                           "--out", str(png)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [row[0] for row in table_rows(proc.stdout)] == ["Adam"]
    assert "Adam: 1 epoch in" in proc.stderr                  # not a TTY: one line per optimizer
    assert png.read_bytes()[:8] == PNG_MAGIC
