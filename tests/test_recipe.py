"""The training recipe's options: augmentation, warm-up, label smoothing, epochs by optimiser steps."""

import itertools
import math

import pytest
import torch
from helpers import load

from hybridsearch.augment import augment
from hybridsearch.errors import SpaceError
from hybridsearch.layout import StudyLayout
from hybridsearch.module import HybridModule
from hybridsearch.objective import Objective
from hybridsearch.search_space import parse_space

SERIES = torch.sin(torch.linspace(0, 6, 120)).expand(8, 2, 120).contiguous()


@pytest.mark.parametrize("kind", ["jitter", "warp"])
def test_augmentation_changes_each_series_keeps_its_shape_and_none_is_the_identity(kind: str) -> None:
    torch.manual_seed(0)
    out = augment(kind, SERIES, torch.ones(1, 2, 1))
    assert out.shape == SERIES.shape
    assert torch.isfinite(out).all()
    per_series = (out - SERIES).abs().mean(dim=(1, 2))
    assert (per_series > 1e-3).all()
    assert (per_series < 0.5).all()  # a variation of the series, not noise
    assert augment("none", SERIES, torch.ones(1, 2, 1)) is SERIES


def test_window_warping_keeps_the_ends_and_moves_the_middle() -> None:
    torch.manual_seed(1)
    ramp = torch.linspace(0, 1, 100).expand(4, 1, 100).contiguous()
    out = augment("warp", ramp, torch.ones(1, 1, 1))
    assert torch.allclose(out[..., 0], ramp[..., 0]) and torch.allclose(out[..., -1], ramp[..., -1])
    assert (out.diff(dim=-1) >= -1e-6).all()  # a time warp of a ramp stays monotone
    assert not torch.allclose(out, ramp, atol=1e-3)


def test_a_padded_series_is_warped_within_its_length_and_its_padding_stays_zero() -> None:
    torch.manual_seed(2)
    lengths = torch.tensor([100, 60, 30, 3])
    ramps = torch.zeros(4, 1, 100)
    for i, n in enumerate(lengths.tolist()):
        ramps[i, 0, :n] = torch.linspace(0, 1, n)
    out = augment("warp", ramps, torch.ones(1, 1, 1), lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        assert torch.allclose(out[i, 0, [0, n - 1]], ramps[i, 0, [0, n - 1]])  # the ends stay
        assert (out[i, 0, :n].diff() >= -1e-6).all()  # a time warp of a ramp stays monotone
        assert (out[i, 0, n:] == 0).all()  # padding is not warped into the series
    assert all(not torch.allclose(out[i], ramps[i], atol=1e-3) for i in range(3))  # each warped
    assert torch.allclose(out[3], ramps[3])  # too short to warp a tenth of it: left as it is


def test_an_unknown_augmentation_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(SpaceError, match=r"augment.*none, jitter, warp"):
        parse_space(
            {"topology": ["fcn"], "model": {}, "training": {"augment": {"type": "categorical", "choices": ["mixup"]}}}
        )


def _lrs(warmup: float, epochs: int = 10) -> list[float]:
    module = HybridModule(
        {"topology": "fcn"}, in_channels=1, n_outputs=2, seq_len=20, lr=1.0, max_epochs=epochs, warmup=warmup
    )
    config = module.configure_optimizers()
    opt, schedule = config["optimizer"], config["lr_scheduler"]
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return lrs


def test_warm_up_rises_linearly_then_follows_a_cosine_to_zero() -> None:
    plain = _lrs(0.0)
    assert plain[0] == pytest.approx(1.0)
    assert plain == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 10)) for e in range(10)])
    warm = _lrs(0.2)
    assert warm[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a > b for a, b in itertools.pairwise(warm[2:]))


def test_label_smoothing_changes_the_training_loss_only() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 1, 20), torch.tensor([0, 1, 0, 1, 0, 1])
    losses = {}
    for smoothing in (0.0, 0.2):
        torch.manual_seed(0)
        m = HybridModule({"topology": "fcn"}, in_channels=1, n_outputs=2, seq_len=20, label_smoothing=smoothing)
        out = m(x).detach()
        losses[smoothing] = (
            m.task.loss(out, y, m.y_std, smoothing=m.hparams.label_smoothing),
            m.task.metrics(out, y, m.y_std, "val")["val_loss"],
        )
    assert losses[0.0][0].item() != pytest.approx(losses[0.2][0].item())
    assert losses[0.0][1].item() == pytest.approx(losses[0.2][1].item())  # validation scores plain cross-entropy


def test_max_steps_caps_a_trials_epochs_by_its_training_split_and_batch_size(tmp_path) -> None:
    data = load("ItalyPowerDemand")
    n = len(data.train.y)

    def limit(max_epochs: int, max_steps: int, batch_size: int) -> int:
        objective = Objective(
            data=data,
            space=parse_space({"topology": ["fcn"], "model": {}, "training": {}}),
            trainer_cfg={"max_epochs": max_epochs, "max_steps": max_steps},
            callbacks_cfg={},
            metric="val_acc",
            direction="maximize",
            layout=StudyLayout.of(tmp_path, "s"),
        )
        return objective.epoch_limit({"topology": "fcn", "batch_size": batch_size})

    assert limit(1000, -1, 16) == 1000
    assert limit(1000, 600, 16) == math.ceil(600 / math.ceil(n / 16))
    assert limit(1000, 600, 64) == math.ceil(600 / math.ceil(n / 64)) > limit(1000, 600, 16)
    assert limit(20, 600, 16) == 20  # max_epochs still bounds it
