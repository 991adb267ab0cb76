import pytest
import torch

from hybridsearch.models import HYBRIDS, TOPOLOGIES
from hybridsearch.models.topologies import fold_steps, windows
from hybridsearch.module import HybridModule
from hybridsearch.search_space import count_parameters

SEQ = 40
# Small settings so the whole matrix runs in seconds; every knob the constructors share is exercised.
SMALL = {
    "feature_extractor": {"patch_len": 8, "patch_overlap": 0.5, "conv_channels": [8, 8], "conv_kernel": [3, 5]},
    "parallel": {"conv_channels": [8, 8], "conv_kernel": [5, 3], "fusion": "gate", "lstm_patch": 4},
    "cascade": {"conv_channels": [8, 8], "conv_kernel": [3, 3], "pool": "avg", "pool_size": 2},
    "conv_gated": {"patch_len": 8, "lstm_hidden": 8, "lstm_layers": 2},
    "lstm": {"lstm_hidden": 8, "bidirectional": True},
    "fcn": {"conv_channels": [8, 8], "conv_kernel": [3, 3]},
}
HEADS = {"classification": 3, "regression": 1, "forecasting": (2, 5)}


def make(topology: str, channels: int, out, **overrides) -> torch.nn.Module:
    return TOPOLOGIES[topology](channels, out, SEQ, **{**SMALL[topology], **overrides})


def test_registry_has_the_four_hybrids_and_two_references() -> None:
    assert set(HYBRIDS) == {"feature_extractor", "parallel", "cascade", "conv_gated"}
    assert set(TOPOLOGIES) == set(HYBRIDS) | {"lstm", "fcn"}


@pytest.mark.parametrize("topology", list(TOPOLOGIES))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("variable", [False, True])
def test_output_shape_and_backward(topology: str, channels: int, head: str, variable: bool) -> None:
    out = HEADS[head]
    model = make(topology, channels, out)
    x = torch.randn(5, channels, SEQ)
    lengths = torch.tensor([40, 33, 20, 9, 40]) if variable else None
    y = model(x, lengths)
    expected = (5, *((out,) if isinstance(out, int) else out))
    assert y.shape == expected
    y.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("topology", list(TOPOLOGIES))
@pytest.mark.parametrize("channels", [1, 3])
def test_padding_changes_nothing(topology: str, channels: int) -> None:
    """A padded series with its length gives the output of the unpadded series, whatever the padding holds."""
    model = make(topology, channels, 4).eval()
    lengths = torch.tensor([40, 31, 17, 6])
    x = torch.randn(4, channels, SEQ)
    padded = x.clone()
    for i, n in enumerate(lengths.tolist()):
        padded[i, :, n:] = 1e3 * torch.randn(channels, SEQ - n)  # garbage, not zeros
    with torch.no_grad():
        batch = model(padded, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :, :n])
            torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_padding_never_reaches_the_gradient(topology: str) -> None:
    model = make(topology, 2, 3).train()
    x = torch.randn(3, 2, SEQ, requires_grad=True)
    lengths = torch.tensor([40, 25, 12])
    model(x, lengths).sum().backward()
    assert x.grad[1, :, 25:].abs().sum() == 0
    assert x.grad[2, :, 12:].abs().sum() == 0
    assert x.grad[1, :, :25].abs().sum() > 0


@pytest.mark.parametrize("topology", ["feature_extractor", "parallel", "cascade", "fcn"])
def test_parameter_count_follows_kernels_and_widths(topology: str) -> None:
    base = count_parameters(make(topology, 2, 3))
    wider_kernel = count_parameters(make(topology, 2, 3, conv_kernel=[7, 7]))
    wider_conv = count_parameters(make(topology, 2, 3, conv_channels=[16, 16]))
    assert wider_kernel > base
    assert wider_conv > base


@pytest.mark.parametrize("topology", ["feature_extractor", "parallel", "cascade", "conv_gated", "lstm"])
def test_parameter_count_follows_lstm_width(topology: str) -> None:
    assert count_parameters(make(topology, 2, 3, lstm_hidden=32)) > count_parameters(
        make(topology, 2, 3, lstm_hidden=8)
    )


def test_conv_gated_gate_kernel_changes_parameters() -> None:
    assert count_parameters(make("conv_gated", 1, 2, gate_kernel=7)) > count_parameters(make("conv_gated", 1, 2))


def test_conv_gated_gate_norm_is_read_from_trial_parameters() -> None:
    """``gate_norm`` (on unless a trial says otherwise) reaches each ConvLSTM layer: its group norm
    has a scale and a shift per input-to-gate channel (4 gates x lstm_hidden)."""
    from hybridsearch.search_space import build_model

    params = {"topology": "conv_gated", "lstm_hidden": 8, "lstm_layers": 2}
    on = build_model(params, in_channels=1, n_outputs=2, seq_len=SEQ)
    off = build_model({**params, "gate_norm": False}, in_channels=1, n_outputs=2, seq_len=SEQ)
    assert count_parameters(on) - count_parameters(off) == 2 * (2 * 4 * 8)


def test_bidirectional_conv_gated_reads_the_windows_forwards_and_backwards() -> None:
    """One bidirectional ConvLSTM layer: the head reads the forward layer's state after the last
    window beside the backward layer's after the first, i.e. a forward pass over the windows in
    reverse order (each window's own steps kept in order)."""
    torch.manual_seed(0)
    bi = make("conv_gated", 2, 3, lstm_layers=1, bidirectional=True).eval()
    ahead, back = make("conv_gated", 2, 3, lstm_layers=1).eval(), make("conv_gated", 2, 3, lstm_layers=1).eval()
    ahead.layers, back.layers = bi.layers, bi.backward_layers
    ahead.head = back.head = torch.nn.Identity()  # the final state's features, before a head
    x = torch.randn(4, 2, SEQ)
    windows_reversed = x.view(4, 2, SEQ // 8, 8).flip(2).reshape(4, 2, SEQ)
    with torch.no_grad():
        torch.testing.assert_close(bi(x), bi.head(torch.cat([ahead(x), back(windows_reversed)], dim=1)))
    assert count_parameters(bi) > 2 * count_parameters(ahead)  # two layers and a head on both


def test_bidirectional_conv_gated_keeps_padding_out() -> None:
    model = make("conv_gated", 2, 4, bidirectional=True).eval()  # two layers: the second reads both directions
    lengths = torch.tensor([40, 31, 17, 6])
    x = torch.randn(4, 2, SEQ)
    padded = x.clone()
    for i, n in enumerate(lengths.tolist()):
        padded[i, :, n:] = 1e3 * torch.randn(2, SEQ - n)
    with torch.no_grad():
        batch = model(padded, lengths)
        for i, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(batch[i : i + 1], model(x[i : i + 1, :, :n]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fusion", ["concat", "sum", "gate"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_parallel_fusion_and_dimension_shuffle(fusion: str, shuffle: bool) -> None:
    model = make("parallel", 3, 2, fusion=fusion, dimension_shuffle=shuffle, lstm_hidden=6)
    assert model.lstm.input_size == (SEQ if shuffle else 3 * 4)  # or windows of lstm_patch=4 steps
    assert model(torch.randn(2, 3, SEQ)).shape == (2, 2)


def test_the_lstm_branch_reads_windows_of_lstm_patch_steps() -> None:
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 3, 10)
    seq, n = fold_steps(x, torch.tensor([10, 5]), 4)
    assert seq.shape == (2, 3, 12)  # ceil(10 / 4) steps of 3 channels x 4 steps
    assert n.tolist() == [3, 2]  # a partial last window counts; padding is zeroed
    torch.testing.assert_close(seq[0, 0], torch.cat([x[0, c, :4] for c in range(3)]))
    assert seq[0, 2, 2::4].eq(0).all() and seq[1, 1, 1:4].eq(0).all()
    raw, same = fold_steps(x, None, 1)
    torch.testing.assert_close(raw, x.transpose(1, 2))  # lstm_patch 1: the raw steps, as LSTM-FCN reads them
    assert same is None


def test_dimension_shuffle_rejects_series_longer_than_seq_len() -> None:
    model = make("parallel", 1, 2, dimension_shuffle=True)
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.randn(2, 1, SEQ + 5))


def test_windows_cover_every_step_of_each_series() -> None:
    """Windows of 8 every 4 steps: a series' last window runs past its end, zero-padded, so that
    no step is dropped (37 steps: 9 windows, the last holding steps 32-36 and three zeros)."""
    x = torch.arange(1, 2 * 40 + 1, dtype=torch.float32).view(2, 1, 40)
    w, n = windows(x, torch.tensor([40, 37]), 8, 4)
    assert w.shape == (2, 9, 1, 8) and n.tolist() == [9, 9]
    torch.testing.assert_close(w[1, 8, 0, :5], x[1, 0, 32:37])
    assert w[1, 8, 0, 5:].eq(0).all()
    assert windows(x[:, :, :5], torch.tensor([5, 3]), 8, 4)[1].tolist() == [1, 1]  # shorter than a window


@pytest.mark.parametrize("topology", ["feature_extractor", "conv_gated"])
def test_the_last_steps_of_a_series_reach_the_output(topology: str) -> None:
    """Windows of 16 over 40 steps: the last 8 steps lie past the last whole window, and still
    change what the model says."""
    model = make(topology, 1, 3, patch_len=16).eval()
    x = torch.randn(2, 1, SEQ)
    changed = x.clone()
    changed[:, :, -8:] += 3.0
    with torch.no_grad():
        assert (model(x) - model(changed)).abs().amax() > 1e-3
        lengths = torch.tensor([SEQ, 36])
        assert (model(x, lengths)[1] - model(changed, lengths)[1]).abs().amax() > 1e-3  # steps 32-35 of 36


def test_window_longer_than_series_is_padded_to_one_window() -> None:
    model = make("feature_extractor", 1, 2, patch_len=64)
    assert model(torch.randn(2, 1, SEQ)).shape == (2, 2)


def test_a_module_on_unequal_lengths_tells_series_apart_by_their_length() -> None:
    """The topologies mask padding, so the length reaches them as the extra input channel that
    ``length_scaling`` adds: here the classes differ in length alone (the same noise inside). The
    FCN, whose masked mean pools over the valid steps, cannot tell them apart without it (a
    recurrence can learn to count steps)."""
    torch.manual_seed(0)
    lengths = torch.tensor([14, 34] * 16)
    x, y = torch.randn(32, 1, SEQ), (lengths > 20).long()
    log = lengths.double().log()

    def accuracy(length_scaling) -> float:
        torch.manual_seed(0)
        module = HybridModule({"topology": "fcn", **SMALL["fcn"]}, in_channels=1, n_outputs=2, seq_len=SEQ,
                              length_scaling=length_scaling)  # fmt: skip
        opt = torch.optim.Adam(module.parameters(), lr=1e-2)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(module(x, lengths), y).backward()
            opt.step()
        with torch.no_grad():
            return float((module.eval()(torch.randn(32, 1, SEQ), lengths).argmax(-1) == y).float().mean())

    assert accuracy((float(log.mean()), float(log.std()))) == 1.0  # on new noise of the same lengths
    assert accuracy(None) < 0.9


def test_the_length_scaling_is_saved_with_the_model(tmp_path) -> None:
    import lightning

    from hybridsearch import load_best

    module = HybridModule({"topology": "fcn", **SMALL["fcn"]}, in_channels=1, n_outputs=2, seq_len=SEQ,
                          classes=["a", "b"], length_scaling=(3.0, 0.5)).eval()  # fmt: skip
    ckpt = tmp_path / "m.ckpt"
    torch.save(  # the fields of a Lightning checkpoint that loading reads
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    loaded = load_best(ckpt)
    assert loaded.length_scaling == (3.0, 0.5)
    x, lengths = torch.randn(4, 1, SEQ), torch.tensor([SEQ, 30, 12, 5])
    with torch.no_grad():
        assert torch.allclose(loaded(x, lengths), module(x, lengths))
