"""``python -m fastopt demo``: train a small NumPy MLP on scikit-learn's digits with each optimizer.

An example of using fastopt in NumPy training code:

- the model's weights live in one flat float32 buffer (``fastopt.flatten`` returns views of it
  shaped like the weights), and backpropagation writes its gradients straight into views of a
  second flat buffer, so ``opt.step(grads)`` is ONE fused kernel call for the whole model;
- every optimizer gets the same learning-rate schedule (``fastopt.schedules.CosineDecay`` with a
  linear warm-up) scaled to its own base learning rate, the same initial weights and the same
  mini-batches, so the loss curves compare the update rules alone.

It prints a table (final train loss, test accuracy, median time of ``opt.step`` inside the training
loop, where the forward and backward passes have just used the caches and the BLAS threads; a step
timed alone in a tight loop is faster) and writes the train
loss curves to a PNG. Needs scikit-learn (the digits data ship inside it) and matplotlib:
``pip install "fastopt[demo]"``.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import fastopt
from fastopt.schedules import CosineDecay

DEFAULT_EPOCHS = 200
DEFAULT_OUT = "fastopt_demo.png"
INSTALL_HINT = 'pip install "fastopt[demo]"'

#: name -> (label, base learning rate, constructor of the optimizer from (params, lr))
OPTIMIZERS = {
    "sgd": ("SGD", 0.1, lambda params, lr: fastopt.SGD(params, lr=lr)),
    "momentum": ("SGD momentum", 0.05, lambda params, lr: fastopt.SGD(params, lr=lr, momentum=0.9)),
    "nesterov": ("SGD Nesterov", 0.05,
                 lambda params, lr: fastopt.SGD(params, lr=lr, momentum=0.9, nesterov=True)),
    "adam": ("Adam", 3e-3, lambda params, lr: fastopt.Adam(params, lr=lr)),
    "rmsprop": ("RMSprop", 1e-3, lambda params, lr: fastopt.RMSprop(params, lr=lr)),
    "adagrad": ("Adagrad", 0.05, lambda params, lr: fastopt.Adagrad(params, lr=lr)),
}


@dataclass
class Result:
    """One optimizer's run: train loss before training and after each epoch, test accuracy,
    and the median time of ``opt.step`` in the loop, in microseconds."""

    name: str
    label: str
    lr: float
    losses: list = field(default_factory=list)
    test_accuracy: float = math.nan
    step_us: float = math.nan

    @property
    def train_loss(self):
        return self.losses[-1]


# ---------------------------------------------------------------- data and model
def load_data():
    """Digits (8x8 images, 10 classes), a fixed stratified 80/20 split, standardized, float32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return (scaler.transform(x_train).astype(np.float32), y_train,
            scaler.transform(x_test).astype(np.float32), y_test)


def init_weights(sizes, rng):
    """Glorot-uniform weights and zero biases, float32: ``[W1, b1, W2, b2, ...]``."""
    arrays = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        arrays += [rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                   np.zeros(fan_out, np.float32)]
    return arrays


def forward(params, x):
    """The activations of every layer, ``x`` first (tanh hidden layers); the last are the logits."""
    acts = [x]
    for i in range(0, len(params), 2):
        z = acts[-1] @ params[i] + params[i + 1]
        acts.append(np.tanh(z) if i + 2 < len(params) else z)
    return acts


def cross_entropy(logits, y):
    """Mean softmax cross-entropy of ``logits`` against labels ``y``, and its gradient by the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    dlogits = np.exp(log_p)
    dlogits[rows, y] -= 1.0
    dlogits /= len(y)
    return float(-log_p[rows, y].mean()), dlogits


def backward(params, acts, dlogits, grads):
    """Backpropagate ``dlogits`` through the layers, writing each gradient into its view in ``grads``."""
    delta = dlogits
    for i in range(len(params) - 2, -1, -2):
        np.matmul(acts[i // 2].T, delta, out=grads[i])       # dW: in place, in the flat gradient buffer
        delta.sum(axis=0, out=grads[i + 1])                   # db
        if i:
            delta = (delta @ params[i].T) * (1.0 - acts[i // 2] ** 2)   # through tanh


def evaluate(params, x, y):
    """``(loss, accuracy)`` of the model on ``(x, y)``."""
    logits = forward(params, x)[-1]
    return cross_entropy(logits, y)[0], float((logits.argmax(axis=1) == y).mean())


# ---------------------------------------------------------------- training
def schedule_for(base_lr, total_steps):
    """The shared schedule, scaled to ``base_lr``: linear warm-up over 5% of the steps, then cosine decay."""
    warmup = max(1, total_steps // 20)
    return CosineDecay(0.0, decay_steps=max(1, total_steps - warmup), warmup_target=base_lr, warmup_steps=warmup)


def batch_order(n, batch_size, epochs, rng):
    """The mini-batches (index arrays) of every epoch: a fresh permutation per epoch."""
    return [np.array_split(rng.permutation(n), math.ceil(n / batch_size)) for _ in range(epochs)]


def train(name, data, init, batches, progress):
    """Train a fresh copy of the ``init`` weights with optimizer ``name`` over ``batches``."""
    label, base_lr, make_optimizer = OPTIMIZERS[name]
    x_train, y_train, x_test, y_test = data
    _, params = fastopt.flatten(init)                                   # weights: views of one buffer
    _, grads = fastopt.flatten([np.zeros_like(p) for p in params])      # gradients: views of another
    opt = make_optimizer(params, schedule_for(base_lr, sum(map(len, batches))))
    result = Result(name, label, base_lr, losses=[evaluate(params, x_train, y_train)[0]])
    progress.update(label, 0, len(batches), result.train_loss)
    step_times = []
    for epoch, epoch_batches in enumerate(batches, 1):
        for idx in epoch_batches:
            acts = forward(params, x_train[idx])
            backward(params, acts, cross_entropy(acts[-1], y_train[idx])[1], grads)
            t0 = time.perf_counter()
            opt.step(grads)                                              # one fused kernel call
            step_times.append(time.perf_counter() - t0)
        result.losses.append(evaluate(params, x_train, y_train)[0])
        progress.update(label, epoch, len(batches), result.train_loss)
    result.test_accuracy = evaluate(params, x_test, y_test)[1]
    # the first step loads the compiled kernel and validates the gradients once: leave it out
    result.step_us = 1e6 * float(np.median(step_times[1:] or step_times))  # robust to a stray preemption
    return result


class Progress:
    """An epoch progress bar redrawn in place with ``\\r`` on a terminal; elsewhere (a log, a pipe)
    one line per optimizer when it finishes."""

    def __init__(self, stream, width=30):
        self.stream, self.width = stream, width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.start = self.last_draw = time.perf_counter()

    def update(self, label, done, total, loss):
        now = time.perf_counter()
        if done == 0:
            self.start = now
        if self.tty and (done in (0, total) or now - self.last_draw > 0.05):
            filled = self.width * done // total
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{label:<13} [{bar}] {done}/{total} epochs  loss {loss:.3e}")
            self.last_draw = now
        if done == total:
            seconds = now - self.start
            if self.tty:
                self.stream.write(f"  {seconds:.1f} s\n")
            else:
                self.stream.write(f"{label}: {total} epoch{'s' * (total > 1)} in {seconds:.1f} s, "
                                  f"train loss {loss:.3e}\n")
        self.stream.flush()


# ---------------------------------------------------------------- report
def format_table(results):
    """The results as a Markdown table: optimizer, base lr, final train loss, test accuracy, step time."""
    lines = ["| optimizer | base lr | train loss | test accuracy | step in loop (us, median) |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.label} | {r.lr:g} | {r.train_loss:.3e} | {r.test_accuracy:.2%} | {r.step_us:.1f} |")
    return "\n".join(lines)


def plot(results, path, title):
    """Write the train loss curves (log scale) to the PNG ``path`` with matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global state, no display needed
    ax = fig.add_subplot()
    for i, r in enumerate(results):
        ax.plot(np.arange(len(r.losses)), r.losses, linestyle=("-", "--", "-.", ":")[i % 4],
                label=f"{r.label} (lr {r.lr:g}): {r.test_accuracy:.1%} test")
    ax.set(yscale="log", xlabel="epoch", ylabel="train loss (cross-entropy)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)


def run(epochs=DEFAULT_EPOCHS, optimizers=None, out=DEFAULT_OUT, seed=0, batch_size=16, hidden=64,
        stdout=None, progress=None):
    """Train the MLP with each optimizer, print the table to ``stdout`` and plot to ``out``.

    Args:
        epochs: passes over the 1437 training images (90 steps each at ``batch_size`` 16).
        optimizers: names from ``OPTIMIZERS`` (default: all of them).
        out: the PNG to write, or None for no plot.
        seed: seeds the initial weights and the batch order (the split is fixed).
        batch_size, hidden: mini-batch size and hidden layer width (64-``hidden``-10 MLP).
        stdout, progress: streams for the table and the progress bar (default: sys.stdout, sys.stderr).

    Returns:
        a list of ``Result``, one per optimizer, in the order given.
    """
    stdout = sys.stdout if stdout is None else stdout
    progress = Progress(sys.stderr if progress is None else progress)
    data = load_data()
    sizes = (data[0].shape[1], hidden, 10)
    rng = np.random.default_rng(seed)
    init = init_weights(sizes, rng)                                 # shared by every optimizer
    batches = batch_order(len(data[0]), batch_size, epochs, rng)    # ditto
    results = [train(name, data, init, batches, progress) for name in (optimizers or OPTIMIZERS)]
    model = "-".join(map(str, sizes))
    print(f"MLP {model} ({sum(a.size for a in init)} float32 parameters in one flat buffer) on digits "
          f"({len(data[0])} train / {len(data[2])} test images), {epochs} epoch{'s' * (epochs > 1)} of "
          f"{len(batches[0])} steps (batches of {batch_size}), cosine schedule with warm-up, seed {seed}\n",
          file=stdout)
    print(format_table(results), file=stdout)
    if out is not None:
        plot(results, out, f"MLP {model} on digits, {epochs} epochs, cosine schedule with warm-up")
        print(f"\nwrote {out}", file=stdout)
    return results


# ---------------------------------------------------------------- command line
def _names(text):
    """argparse type of ``--optimizers``: comma-separated names from ``OPTIMIZERS``."""
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in OPTIMIZERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown optimizer {', '.join(bad) or text!r}; "
                                         f"choose from {','.join(OPTIMIZERS)}")
    return names


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser):
    """Add the ``demo`` options to an argparse parser."""
    parser.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS,
                        help=f"epochs per optimizer (default: {DEFAULT_EPOCHS})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"PNG of the loss curves (default: {DEFAULT_OUT})")
    parser.add_argument("--optimizers", type=_names, default=list(OPTIMIZERS),
                        help=f"comma-separated subset of {','.join(OPTIMIZERS)} (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and batch order (default: 0)")


def _missing(module):
    """Whether ``module`` cannot be imported."""
    try:
        __import__(module)
    except ImportError:
        return True
    return False


def main_from_args(args):
    """Run ``demo`` from parsed arguments; returns the exit code (2 when scikit-learn is missing)."""
    if _missing("sklearn"):
        print(f"fastopt demo needs scikit-learn (for the digits data) and matplotlib: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    out = args.out
    if _missing("matplotlib"):
        print(f"fastopt demo: matplotlib is not installed, so no plot is written ({INSTALL_HINT})",
              file=sys.stderr)
        out = None
    run(epochs=args.epochs, optimizers=args.optimizers, out=out, seed=args.seed)
    return 0
