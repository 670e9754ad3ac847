import math
import os
import signal

import pytest
import torch
from torch import nn

from course_lib import train
from course_lib.train import History, Trainer


def make_problem(seed=0, n=64):
    """A linear regression the loop must solve: y = x @ w_true + 0.5."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.5
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]
    return batches


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def make_trainer(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("live_plot", False)
    return Trainer(model, opt, mse, make_problem(), **kwargs)


def test_fit_lowers_the_loss_and_logs_every_step(capsys):
    trainer = make_trainer(eval_data=make_problem(seed=1), eval_every=10)
    history = trainer.fit(steps=60)
    assert history.step == 60
    assert history.train_steps == list(range(1, 61))
    assert history.train_loss[-1] < 0.01 * history.train_loss[0]
    assert history.eval_steps == [10, 20, 30, 40, 50, 60]
    assert history.eval_loss[-1] < 1e-3
    assert history.best_step == 60
    assert "Done: step 60" in capsys.readouterr().out


def test_fit_steps_is_a_total_so_a_second_call_carries_on():
    trainer = make_trainer()
    trainer.fit(steps=5)
    trainer.fit(steps=8)
    assert trainer.history.step == 8 and len(trainer.history.train_loss) == 8
    trainer.fit(steps=8)  # nothing left to do
    assert trainer.history.step == 8


def test_fit_epochs_and_log_every_average():
    trainer = make_trainer(log_every=4)
    history = trainer.fit(epochs=3)  # 4 batches per epoch
    assert history.step == 12
    assert history.train_steps == [4, 8, 12]


def test_gradient_clipping_bounds_the_update():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    big = [(torch.full((4, 3), 100.0), torch.zeros(4, 1))]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is the (clipped) gradient
    trainer = Trainer(model, opt, mse, big, max_grad_norm=0.5, progress=False, live_plot=False)
    history = trainer.fit(steps=1)
    assert history.grad_norm[0] > 100  # the norm before clipping is logged
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert update.norm().item() == pytest.approx(0.5, rel=1e-4)


def test_early_stopping_restores_the_best_weights(capsys):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = iter([5.0, 3.0, 4.0, 4.5, 4.6, 9.0, 9.0])
    snapshots = []

    def eval_loss(model, batch):
        return torch.tensor(next(losses))

    trainer = Trainer(
        model, opt, mse, make_problem(), eval_data=[0], eval_every=1,
        early_stopping_patience=3, progress=False, live_plot=False,
    )
    trainer.loss_fn = lambda m, b: eval_loss(m, b) if not m.training else mse(m, b)
    real_after_eval = trainer._after_eval

    def spy(result):
        snapshots.append(model.weight.detach().clone())
        return real_after_eval(result)

    trainer._after_eval = spy
    history = trainer.fit(steps=50)
    assert history.stopped_early and history.step == 5
    assert history.best_step == 2 and history.best_eval_loss == 3.0
    assert torch.equal(model.weight, snapshots[1])  # weights of step 2 are back
    assert "Early stop" in capsys.readouterr().out


def test_loss_fn_may_return_a_dict_of_losses():
    def two_losses(model, batch):
        loss = mse(model, batch)
        return {"loss": loss, "half": loss / 2}

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), two_losses,
                      make_problem(), progress=False, live_plot=False)
    h = trainer.fit(steps=3)
    assert h.extras["half"] == pytest.approx([v / 2 for v in h.train_loss])


def test_gradient_accumulation_matches_one_big_batch():
    data = make_problem(n=32)
    full = [(torch.cat([data[0][0], data[1][0]]), torch.cat([data[0][1], data[1][1]]))]
    results = []
    for batches, accum in [(data[:2], 2), (full, 1)]:
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), mse, batches,
                    grad_accum_steps=accum, progress=False, live_plot=False, max_grad_norm=None)
        t.fit(steps=1)
        results.append(model.weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_ctrl_c_stops_after_the_step_and_keeps_model_and_history(tmp_path, capsys):
    calls = {"n": 0}

    def interrupting(model, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)  # what the notebook's stop button sends
        return mse(model, batch)

    trainer = make_trainer(checkpoint_path=tmp_path / "ckpt.safetensors")
    trainer.loss_fn = interrupting
    before = signal.getsignal(signal.SIGINT)
    history = trainer.fit(steps=100)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    assert history.interrupted and history.step == 4 and len(history.train_loss) == 4
    assert "Interrupted at step 4" in capsys.readouterr().out
    assert (tmp_path / "ckpt.safetensors").exists()
    trainer.loss_fn = mse
    trainer.fit(steps=6)  # carries on
    assert trainer.history.step == 6 and not trainer.history.interrupted


def test_keyboard_interrupt_raised_inside_the_step_is_also_caught():
    def raising(model, batch):
        raise KeyboardInterrupt

    trainer = make_trainer()
    trainer.loss_fn = raising
    history = trainer.fit(steps=3)
    assert history.interrupted and history.step == 0


def test_checkpoint_resume_continues_the_same_run(tmp_path):
    path = tmp_path / "run.safetensors"
    straight = make_trainer(seed=3)
    straight.fit(steps=10)

    first = make_trainer(seed=3, checkpoint_path=path, checkpoint_every=2)
    first.fit(steps=6)
    resumed = make_trainer(seed=99, checkpoint_path=path, resume=True)
    assert resumed.history.step == 6
    resumed.fit(steps=10)
    assert resumed.history.train_loss == pytest.approx(straight.history.train_loss)
    assert torch.allclose(resumed.model.weight, straight.model.weight)


def test_nan_loss_stops_with_advice():
    trainer = make_trainer()
    trainer.loss_fn = lambda m, b: mse(m, b) * float("nan")
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        trainer.fit(steps=2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eval_every": 0}, "eval_every"),
        ({"grad_accum_steps": 0}, "grad_accum_steps"),
        ({"early_stopping_patience": 2}, "eval_data"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"mixed_precision": "fp16"}, "needs a CUDA"),
        ({"max_grad_norm": -1}, "max_grad_norm"),
        ({"log_every": True}, "log_every"),  # a bool is not a count
        ({"eval_every": True}, "eval_every"),
    ],
)
def test_bad_settings_are_refused_with_a_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_trainer(**kwargs)


@pytest.mark.parametrize("kwargs", [{"steps": True}, {"steps": 0}, {"epochs": True}, {"steps": 2.0}])
def test_fit_refuses_a_goal_that_is_not_a_positive_int(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_trainer().fit(**kwargs)


def test_early_stopping_point_refuses_a_bool_patience():
    assert train.early_stopping_point([3.0, 2.0, 2.5, 2.6], patience=2) == 3
    with pytest.raises(ValueError, match="patience"):
        train.early_stopping_point([1.0], patience=True)


def test_bad_arguments_and_empty_data():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer("model", opt, mse, [])
    with pytest.raises(TypeError, match="Optimizer"):
        Trainer(model, "adam", mse, [])
    with pytest.raises(TypeError, match="iterable"):
        Trainer(model, opt, mse, 5)
    empty = Trainer(model, opt, mse, [], progress=False, live_plot=False)
    with pytest.raises(ValueError, match="training split empty"):
        empty.fit(steps=1)
    with pytest.raises(ValueError, match="exactly one"):
        empty.fit()
    t = Trainer(model, opt, mse, make_problem(), eval_data=[], eval_every=1, progress=False, live_plot=False)
    with pytest.raises(ValueError, match="validation split empty"):
        t.fit(steps=1)
    bad = Trainer(model, opt, lambda m, b: m(b[0]), make_problem(), progress=False, live_plot=False)
    with pytest.raises(ValueError, match="scalar loss"):
        bad.fit(steps=1)


def test_move_to_device_handles_nested_batches():
    batch = {"ids": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(3)]), "n": 3}
    moved = train.move_to_device(batch, torch.device("cpu"))
    assert moved["n"] == 3 and torch.equal(moved["pair"][1][0], torch.ones(3))


def test_history_round_trips_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    trainer = make_trainer(eval_data=make_problem(seed=2), eval_every=5)
    history = trainer.fit(steps=10)
    again = History.from_dict(history.to_dict())
    assert again == history
    fig = history.plot()
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "train" in labels and "validation" in labels


def test_moving_average_is_centred_and_measured_in_steps():
    # A straight line is its own centred average (away from the ends): no lag, unlike an EMA.
    steps = list(range(0, 200, 10))
    values = [100.0 - 0.5 * s for s in steps]
    smoothed = train.moving_average(steps, values, window=40)
    assert smoothed[5:-5] == pytest.approx(values[5:-5])
    # The same window in steps averages the same stretch of training whatever the log interval.
    dense = list(range(0, 200, 2))
    dense_avg = train.moving_average(dense, [float(s % 20 < 10) for s in dense], window=20)
    assert dense_avg[20:-20] == pytest.approx([0.5] * len(dense_avg[20:-20]), abs=0.06)
    # Each point is the plain mean of the values within window/2 steps of it.
    assert train.moving_average([0, 1, 2, 3], [0.0, 4.0, 8.0, 0.0], window=2) == pytest.approx(
        [2.0, 4.0, 4.0, 4.0]
    )
    with pytest.raises(ValueError, match="as many steps as values"):
        train.moving_average([0, 1], [1.0], window=2)
    with pytest.raises(ValueError, match="at least 1 step"):
        train.moving_average([0, 1], [1.0, 2.0], window=0)


def test_history_plot_smoothing_does_not_lag_validation():
    import matplotlib

    matplotlib.use("Agg")
    # Falling loss logged every 10 steps, validation equal to training: the smoothed train curve
    # must not sit above validation (the artefact an exponential average drew).
    steps = list(range(10, 1010, 10))
    loss = [5.0 * 0.998**s for s in steps]
    history = History(step=1000, train_steps=steps, train_loss=loss, eval_steps=steps[9::10],
                      eval_loss=loss[9::10])
    fig = history.plot()
    train_line = [line for line in fig.axes[0].get_lines() if line.get_label() == "train"][0]
    smoothed = dict(zip(steps, train_line.get_ydata()))
    gaps = [smoothed[s] - v for s, v in zip(history.eval_steps[:-1], history.eval_loss[:-1])]
    assert max(gaps) < 0.02 * max(loss), gaps


# ---- the optimizer and the schedules -------------------------------------------------------------
def _rates(make_schedule, steps):
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return rates


def test_warmup_inverse_sqrt_schedule():
    rates = _rates(lambda opt: train.warmup_inverse_sqrt(opt, warmup_steps=4), 16)
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[15] == pytest.approx(math.sqrt(4 / 16))


def test_warmup_cosine_and_linear_warmup_decay():
    cosine = _rates(lambda opt: train.warmup_cosine(opt, warmup=4, total=12, floor=0.1), 14)
    assert cosine[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert cosine[8] == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert cosine[12] == pytest.approx(0.1) and cosine[13] == pytest.approx(0.1)  # the floor after total
    linear = _rates(lambda opt: train.linear_warmup_decay(opt, warmup=2, total=10), 12)
    assert linear[:2] == pytest.approx([0.5, 1.0])
    assert linear[6] == pytest.approx(0.5) and linear[10] == 0.0 and linear[11] == 0.0
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="warmup"):
        train.warmup_cosine(opt, warmup=True, total=10)
    with pytest.raises(TypeError, match="Optimizer"):
        train.linear_warmup_decay("adam", 2, 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        train.warmup_inverse_sqrt(opt, 0)
    # no warm-up: the peak at once (the old recipes' schedules took warmup=0)
    assert _rates(lambda opt: train.linear_warmup_decay(opt, 0, 4), 2) == pytest.approx([1.0, 0.75])
    assert _rates(lambda opt: train.warmup_cosine(opt, 0, 4), 1) == pytest.approx([1.0])


def test_build_optimizer_decays_matrices_only():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    names = {id(p): n for n, p in model.named_parameters()}

    def groups(opt):
        return [sorted(names[id(p)] for p in g["params"]) for g in opt.param_groups]

    plain = train.build_optimizer(model, 1e-3, 0.1)
    assert groups(plain) == [["0.weight", "1.weight"], ["1.bias", "2.bias", "2.weight"]]  # 1-D: no decay
    assert [g["weight_decay"] for g in plain.param_groups] == [0.1, 0.0] and plain.defaults["betas"] == (0.9, 0.95)
    # names with "embedding" are tables; decay_embeddings decays them too
    named = nn.ModuleDict({"token_embedding": nn.Embedding(10, 4), "proj": nn.Linear(4, 4)})
    names = {id(p): n for n, p in named.named_parameters()}
    assert groups(train.build_optimizer(named, 1e-3, 0.1))[0] == ["proj.weight"]
    both = train.build_optimizer(named, 1e-3, 0.1, betas=(0.9, 0.98), eps=1e-6, decay_embeddings=True)
    assert groups(both)[0] == ["proj.weight", "token_embedding.weight"] and both.defaults["eps"] == 1e-6
