"""Learning-rate schedules: Keras's formulas (hand-computed values) and torch's step schedulers."""
from __future__ import annotations

import math

import pytest

from fastopt import schedules as S


@pytest.mark.parametrize("schedule, step, expected", [
    (S.ExponentialDecay(0.1, 10, 0.5), 0, 0.1),
    (S.ExponentialDecay(0.1, 10, 0.5), 10, 0.05),
    (S.ExponentialDecay(0.1, 10, 0.5), 15, 0.1 * 0.5 ** 1.5),
    (S.ExponentialDecay(0.1, 10, 0.5, staircase=True), 15, 0.05),
    (S.ExponentialDecay(0.1, 10, 0.5, staircase=True), 20, 0.025),
    (S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 0, 1.0),
    (S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 10, 1.0),    # boundary belongs to the left
    (S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 11, 0.5),
    (S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 20, 0.5),
    (S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 21, 0.1),
    (S.PolynomialDecay(0.1, 10, end_learning_rate=0.0), 5, 0.05),
    (S.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0), 5, 0.09 * 0.25 + 0.01),
    (S.PolynomialDecay(0.1, 10, end_learning_rate=0.01), 25, 0.01),     # clamped at the end
    (S.PolynomialDecay(0.1, 10, end_learning_rate=0.0, cycle=True), 15, 0.1 * (1 - 15 / 20)),
    (S.PolynomialDecay(0.1, 10, end_learning_rate=0.0, cycle=True), 0, 0.1),
    (S.InverseTimeDecay(0.1, 1, 0.5), 2, 0.05),
    (S.InverseTimeDecay(0.1, 10, 0.5, staircase=True), 19, 0.1 / 1.5),
    (S.CosineDecay(0.1, 100), 0, 0.1),
    (S.CosineDecay(0.1, 100), 50, 0.05),
    (S.CosineDecay(0.1, 100, alpha=0.1), 100, 0.01),
    (S.CosineDecay(0.1, 100, alpha=0.1), 500, 0.01),
    (S.CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 5, 0.1),
    (S.CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 10, 0.2),
    (S.CosineDecay(0.0, 100, warmup_target=0.2, warmup_steps=10), 60, 0.1),
    (S.CosineDecayRestarts(0.1, 100), 50, 0.05),
    (S.CosineDecayRestarts(0.1, 100), 100, 0.1),                        # first restart
    (S.CosineDecayRestarts(0.1, 100), 200, 0.05),                       # middle of the 200-step period
    (S.CosineDecayRestarts(0.1, 100), 300, 0.1),                        # second restart
    (S.CosineDecayRestarts(0.1, 100, t_mul=1.0, m_mul=0.5), 150, 0.1 * 0.5 * 0.5),
    (S.CosineDecayRestarts(0.1, 100, m_mul=0.5, alpha=0.2), 100, 0.1 * (0.8 * 0.5 + 0.2)),
    (S.StepLR(0.1, step_size=30, gamma=0.1), 65, 0.1 * 0.1 ** 2),
    (S.MultiStepLR(0.1, milestones=[30, 80], gamma=0.5), 80, 0.1 * 0.25),
])
def test_keras_and_torch_formulas(schedule, step, expected):
    assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def keras_cosine_restarts(step, lr, first, t_mul, m_mul, alpha):
    """An independent transcription of Keras's CosineDecayRestarts, period by period."""
    start, length, i = 0.0, float(first), 0
    while step >= start + length:
        start += length
        length *= t_mul
        i += 1
    frac = (step - start) / length
    return lr * ((1 - alpha) * 0.5 * m_mul ** i * (1 + math.cos(math.pi * frac)) + alpha)


@pytest.mark.parametrize("t_mul, m_mul, alpha", [(2.0, 1.0, 0.0), (1.5, 0.7, 0.1), (1.0, 0.9, 0.05)])
def test_cosine_restarts_matches_a_period_by_period_transcription(t_mul, m_mul, alpha):
    schedule = S.CosineDecayRestarts(0.3, 37, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    for step in range(0, 2000, 7):
        assert schedule(step) == pytest.approx(keras_cosine_restarts(step, 0.3, 37, t_mul, m_mul, alpha),
                                               rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("make_ours, make_torch", [
    (lambda: S.StepLR(0.1, step_size=7, gamma=0.3),
     lambda torch, opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.3)),
    (lambda: S.MultiStepLR(0.1, milestones=[5, 12, 12, 40], gamma=0.5),
     lambda torch, opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5, 12, 12, 40], gamma=0.5)),
])
def test_step_schedules_match_torch(make_ours, make_torch):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_torch(torch, opt)
    ours = make_ours()
    for step in range(60):
        assert ours(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()


ALL = [S.ExponentialDecay(0.1, 10, 0.5, staircase=True), S.PiecewiseConstantDecay([3, 9], [0.3, 0.2, 0.1]),
       S.PolynomialDecay(0.1, 10, 0.001, 0.5, cycle=True), S.InverseTimeDecay(0.1, 10, 0.5),
       S.CosineDecay(0.0, 50, alpha=0.1, warmup_target=0.1, warmup_steps=5),
       S.CosineDecayRestarts(0.1, 20, t_mul=1.5, m_mul=0.8, alpha=0.05), S.StepLR(0.1, 4, 0.5),
       S.MultiStepLR(0.1, [3, 7], 0.5)]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_serialize_round_trips_exactly(schedule):
    again = S.deserialize(S.serialize(schedule))
    assert again == schedule and type(again) is type(schedule)
    assert [again(s) for s in range(100)] == [schedule(s) for s in range(100)]


@pytest.mark.parametrize("make, match", [
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: S.ExponentialDecay(float("nan"), 10, 0.5), "initial_learning_rate"),
    (lambda: S.PiecewiseConstantDecay([10, 20], [1.0, 0.5]), "one more entry"),
    (lambda: S.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]), "strictly increasing"),
    (lambda: S.PolynomialDecay(-0.1, 10), "initial_learning_rate"),
    (lambda: S.CosineDecay(0.1, 10, alpha=1.5), "alpha"),
    (lambda: S.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1), "warmup_steps"),
    (lambda: S.CosineDecayRestarts(0.1, 10, t_mul=0.0), "t_mul"),
    (lambda: S.StepLR(0.1, step_size=0), "step_size"),
    (lambda: S.deserialize({"class_name": "Nope", "config": {}}), "not a serialized"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_negative_or_nan_step_is_rejected():
    for step in (-1, float("nan"), "3"):
        with pytest.raises(ValueError, match="step"):
            S.ExponentialDecay(0.1, 10, 0.5)(step)


# ---------------------------------------------------------------------------- in the optimizers
import copy  # noqa: E402

import numpy as np  # noqa: E402

import fastopt  # noqa: E402
from fastopt import reference  # noqa: E402


@pytest.mark.parametrize("name, hyper", [("SGD", dict(momentum=0.9)), ("Adam", {}), ("AdamW", dict(weight_decay=0.1)),
                                         ("RMSprop", dict(centered=True)), ("Adagrad", dict(lr_decay=0.01))])
def test_optimizer_lr_accepts_a_schedule(name, hyper):
    """The k-th update (k = 0, 1, ...) uses schedule(k), as Keras's iterations count."""
    schedule = S.CosineDecay(0.05, decay_steps=20, alpha=0.1, warmup_target=0.1, warmup_steps=5)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(50)
    ref_p, state = p.copy(), {}
    opt = getattr(fastopt, name)(p, lr=schedule, **hyper)
    for k in range(30):
        g = rng.standard_normal(50)
        opt.step(g)
        reference.STEPS[name](ref_p, g.copy(), state, lr=schedule(k), **hyper)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)


def test_a_schedule_going_negative_raises_before_any_write():
    schedule = S.PiecewiseConstantDecay([2], [0.1, -0.1])
    p = np.ones(4)
    opt = fastopt.SGD(p, lr=schedule)
    for _ in range(3):
        opt.step(np.ones(4))
    before = p.copy()
    with pytest.raises(ValueError, match="lr schedule at step 3"):
        opt.step(np.ones(4))
    np.testing.assert_array_equal(p, before)


def test_schedule_serializes_into_the_state_dict_and_resumes_bit_identically():
    schedule = S.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.7, staircase=True)
    rng = np.random.default_rng(1)
    p = rng.standard_normal(20)
    opt = fastopt.Adam(p, lr=schedule)
    grads = [rng.standard_normal(20) for _ in range(12)]
    for g in grads[:5]:
        opt.step(g)
    sd = copy.deepcopy(opt.state_dict())
    assert sd["param_groups"][0]["lr"] == S.serialize(schedule)  # plain data, checkpoint-friendly
    q = p.copy()
    resumed = fastopt.Adam(q, lr=0.5)
    resumed.load_state_dict(sd)
    assert resumed.param_groups[0]["lr"] == schedule
    for g in grads[5:]:
        opt.step(g)
        resumed.step(g)
    np.testing.assert_array_equal(q, p)


# ---------------------------------------------------------------------------- torch-style schedulers
def torch_lrs(make_scheduler, steps, lr=0.1):
    """The lr torch's scheduler gives each of ``steps`` optimizer steps."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(torch.optim.lr_scheduler, opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("start_factor", [0.0 + 1e-9, 0.25, 1 / 3])
def test_linear_warmup_matches_torch_linear_lr(start_factor):
    expected = torch_lrs(lambda L, o: L.LinearLR(o, start_factor=start_factor, end_factor=1.0, total_iters=7), 20)
    ours = S.LinearWarmup(0.1, warmup_steps=7, start_factor=start_factor)
    for k, e in enumerate(expected):
        assert ours(k) == pytest.approx(e, rel=1e-12)


def test_linear_warmup_hands_over_to_another_schedule():
    after = S.CosineDecay(0.1, decay_steps=50)
    sched = S.LinearWarmup(0.1, warmup_steps=10, after=after)
    assert sched(5) == pytest.approx(0.05) and sched(10) == after(0) and sched(35) == after(25)


@pytest.mark.parametrize("kw", [dict(), dict(anneal_strategy="linear"), dict(three_phase=True),
                                dict(pct_start=0.5, div_factor=10.0, final_div_factor=100.0, three_phase=True,
                                     anneal_strategy="linear")])
def test_one_cycle_matches_torch(kw):
    expected = torch_lrs(lambda L, o: L.OneCycleLR(o, max_lr=0.4, total_steps=97, cycle_momentum=False, **kw), 97)
    ours = S.OneCycleLR(0.4, total_steps=97, **kw)
    for k, e in enumerate(expected):
        assert ours(k) == pytest.approx(e, rel=1e-10, abs=1e-15)
    with pytest.raises(ValueError, match="past the end"):
        ours(97)


@pytest.mark.parametrize("kw", [dict(patience=2), dict(mode="max", patience=1, cooldown=2, factor=0.5),
                                dict(threshold_mode="abs", threshold=0.05, patience=0, min_lr=0.02)])
def test_reduce_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.93, 0.94, 0.96, 0.8, 0.81, 0.82, 0.83, 0.84, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    ours = S.ReduceLROnPlateau(0.1, **kw)
    for k, m in enumerate(metrics):
        tsched.step(m)
        assert ours.report(m) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        assert ours(k) == ours.current_lr


def test_reduce_on_plateau_state_survives_serialization():
    sched = S.ReduceLROnPlateau(0.1, patience=1)
    for m in (1.0, 1.0, 1.0, 0.5, 0.6):
        sched.report(m)
    again = S.deserialize(S.serialize(sched))
    for m in (0.7, 0.8, 0.9, 0.4):
        assert again.report(m) == sched.report(m)


@pytest.mark.parametrize("schedule", [S.LinearWarmup(0.1, 5, 0.1, after=S.StepLR(0.1, 3)),
                                      S.OneCycleLR(0.3, 50, three_phase=True)], ids=lambda s: type(s).__name__)
def test_new_schedules_round_trip(schedule):
    again = S.deserialize(S.serialize(schedule))
    assert again == schedule and [again(s) for s in range(50)] == [schedule(s) for s in range(50)]


KERAS_SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.6)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.6, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 25, 60], values=[1.0, 0.5, 0.1, 0.01])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=40, end_learning_rate=0.001, power=1.5)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=40, end_learning_rate=0.001, power=0.5,
                             cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=9, decay_rate=0.3)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=9, decay_rate=0.3, staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=50, alpha=0.05)),
    ("CosineDecay", dict(initial_learning_rate=0.01, decay_steps=50, alpha=0.1, warmup_target=0.2,
                         warmup_steps=15)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=13, t_mul=1.5, m_mul=0.7,
                                 alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10)),
]


@pytest.mark.parametrize("name, kw", KERAS_SCHEDULES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(KERAS_SCHEDULES)])
def test_keras_schedules_match_keras(name, kw):
    """Each Keras-named schedule against keras.optimizers.schedules itself (float64 floatx), 150 steps."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.config.set_floatx("float64")
    try:
        theirs = getattr(keras.optimizers.schedules, name)(**kw)
        ours = getattr(S, name)(**kw)
        for step in range(150):
            expected = float(keras.ops.convert_to_numpy(theirs(step)))
            assert ours(step) == pytest.approx(expected, rel=1e-12, abs=1e-15), step
    finally:
        keras.config.set_floatx("float32")
