import copy
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from hybridsearch.models import HYBRIDS, TOPOLOGIES
from hybridsearch.search_space import (
    SpaceError,
    build_model,
    constructor_args,
    model_arguments,
    parse_space,
    sample,
)

DEFAULT = yaml.safe_load((Path(__file__).parents[1] / "conf" / "space" / "default.yaml").read_text())
LAYER_PARAMS = ("conv_channels", "conv_kernel")


@pytest.fixture
def space_dict() -> dict:
    return copy.deepcopy(DEFAULT)


def test_default_space_searches_the_four_hybrids() -> None:
    space = parse_space(DEFAULT)
    assert space.topologies == HYBRIDS


def used_names(topology: str, params: dict) -> set[str]:
    """The parameter names a topology may legitimately receive."""
    names = {"topology", "lr", "weight_decay", "batch_size", "conv_layers"} | constructor_args(topology)
    layers = params.get("conv_layers", 0)
    names |= {f"{n}_{i}" for n in LAYER_PARAMS for i in range(1, layers + 1)}
    return names


def test_ask_tell_samples_every_topology_with_only_its_own_parameters(space_dict: dict) -> None:
    space_dict["topology"] = list(TOPOLOGIES)
    space = parse_space(space_dict)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen: dict[str, set[str]] = {}
    for _ in range(120):
        trial = study.ask()
        params = sample(trial, space)
        assert params == trial.params
        topology = params["topology"]
        assert set(params) <= used_names(topology, params), topology
        seen.setdefault(topology, set()).update(params)
        study.tell(trial, 0.0)
    assert set(seen) == set(TOPOLOGIES)
    assert "fusion" in seen["parallel"] and "fusion" not in seen["cascade"]
    assert "gate_kernel" in seen["conv_gated"] and "conv_layers" not in seen["conv_gated"]
    assert "pool" in seen["cascade"] and "pool" not in seen["parallel"]
    assert not {"lstm_hidden", "bidirectional"} & seen["fcn"]
    assert not {"conv_layers", "conv_channels_1"} & seen["lstm"]


def test_conditional_on_value_and_per_layer(space_dict: dict) -> None:
    space = parse_space(space_dict)
    base = {
        "topology": "cascade",
        "conv_layers": 2,
        "conv_channels_1": 16,
        "conv_channels_2": 32,
        "conv_kernel_1": 3,
        "conv_kernel_2": 5,
        "lstm_hidden": 16,
        "lstm_layers": 1,
        "bidirectional": False,
        "dropout": 0.1,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 16,
    }
    no_pool = sample(optuna.trial.FixedTrial({**base, "pool": "none"}), space)
    assert "pool_size" not in no_pool
    pooled = sample(optuna.trial.FixedTrial({**base, "pool": "max", "pool_size": 3}), space)
    assert pooled["pool_size"] == 3
    assert "conv_channels_3" not in pooled
    kwargs, _ = model_arguments(pooled, seq_len=100)
    assert kwargs["conv_channels"] == [16, 32] and kwargs["conv_kernel"] == [3, 5]


def test_build_model_from_dict_fixed_trial_and_frozen_trial(space_dict: dict) -> None:
    space = parse_space(space_dict)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: (sample(t, space), 0.0)[1], n_trials=12)
    x = torch.randn(2, 2, 60)
    for frozen in study.trials:
        fixed = optuna.trial.FixedTrial(frozen.params)
        sample(fixed, space)
        models = [build_model(src, in_channels=2, n_outputs=3, seq_len=60) for src in (frozen.params, fixed, frozen)]
        outs = []
        for m in models:
            m.load_state_dict(models[0].state_dict())
            outs.append(m.eval()(x))
        torch.testing.assert_close(outs[0], outs[1])
        torch.testing.assert_close(outs[0], outs[2])


def test_clamps_a_window_longer_than_the_series_and_says_so() -> None:
    params = {"topology": "conv_gated", "patch_len": 32}
    kwargs, notes = model_arguments(params, seq_len=24)
    assert kwargs["patch_len"] == 24
    assert notes and "patch_len 32 -> 24" in notes[0]
    assert build_model(params, in_channels=1, n_outputs=2, seq_len=24)(torch.randn(3, 1, 24)).shape == (3, 2)


def test_clamps_pooling_that_would_shrink_the_series_below_one_step() -> None:
    params = {
        "topology": "cascade",
        "conv_layers": 3,
        "pool": "max",
        "pool_size": 4,
        **{f"conv_channels_{i}": 8 for i in (1, 2, 3)},
        **{f"conv_kernel_{i}": 3 for i in (1, 2, 3)},
    }
    kwargs, notes = model_arguments(params, seq_len=24)
    assert kwargs["pool_layers"] == 2  # 24 -> 6 -> 1; a third pooling would leave 0 steps
    assert "pooling after 2 of 3" in notes[0]
    model = build_model(params, in_channels=1, n_outputs=2, seq_len=24)
    assert model(torch.randn(2, 1, 24)).shape == (2, 2)
    assert model_arguments(params, seq_len=200)[1] == []


def test_every_sampled_configuration_runs_on_a_short_series(space_dict: dict) -> None:
    """The space never yields a model that crashes, even on a series much shorter than its windows and pools."""
    space_dict["topology"] = list(TOPOLOGIES)
    space = parse_space(space_dict)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    for _ in range(40):
        trial = study.ask()
        params = sample(trial, space)
        model = build_model(params, in_channels=1, n_outputs=2, seq_len=6)
        assert model(torch.randn(2, 1, 6)).shape == (2, 2), params
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(topology=["parallel", "transformer"]), "space.topology: unknown topology 'transformer'"),
        (lambda s: s.update(topology=[]), "space.topology"),
        (lambda s: s["model"]["lstm_hidden"].update(low=256), "space.model.lstm_hidden: low (256)"),
        (lambda s: s["model"]["dropout"].update(type="uniform"), "space.model.dropout.type: unknown type 'uniform'"),
        (lambda s: s["model"]["fusion"].update(topologies=["paralel"]), "space.model.fusion.topologies: unknown"),
        (lambda s: s["model"]["fusion"].update(topologies=["cascade"]), "space.model.fusion: topology 'cascade' takes"),
        (lambda s: s["model"]["pool_size"].update(when={"pooling": ["max"]}), "space.model.pool_size.when: 'pooling'"),
        (lambda s: s["model"]["pool_size"].update(when={"pool": ["median"]}), "space.model.pool_size.when"),
        (lambda s: s["model"]["conv_kernel"].update(per_layer="layers"), "space.model.conv_kernel.per_layer"),
        (lambda s: s["model"]["lstm_hidden"].update(hihg=3), "space.model.lstm_hidden: unknown key"),
        (lambda s: s["training"]["lr"].update(low=0), "space.training.lr: log: true needs low > 0"),
        (lambda s: s["model"].update(lr={"type": "float", "low": 0, "high": 1}), "space.model.lr: no topology"),
        (lambda s: s["training"].update(momentum={"type": "float", "low": 0, "high": 1}), "space.training.momentum"),
        (lambda s: s["model"]["gate_kernel"].update(choices=[]), "space.model.gate_kernel.choices"),
        (lambda s: s.update(modle={}), "space: unknown key"),
    ],
)
def test_malformed_space_fails_with_one_line_naming_the_key(space_dict: dict, edit, message: str) -> None:
    edit(space_dict)
    with pytest.raises(SpaceError) as err:
        parse_space(space_dict)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_from_the_command_line_restrict_topologies_and_change_ranges() -> None:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from hybridsearch.config import register_configs

    register_configs()
    with initialize_config_module("hybridsearch.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["+study=timeseries", "space.topology=[parallel,cascade]", "space.model.lstm_hidden.high=256"],
        )
    space = parse_space(OmegaConf.to_container(cfg.space, resolve=True))
    assert space.topologies == ("parallel", "cascade")
    assert next(p for p in space.model if p.name == "lstm_hidden").high == 256


def test_enqueued_designs_outside_a_narrowed_space_are_skipped() -> None:
    from omegaconf import OmegaConf

    from hybridsearch.checks import check_enqueue
    from hybridsearch.errors import ConfigError

    fcn = {
        "topology": "fcn",
        "conv_layers": 1,
        "conv_channels_1": 128,
        "conv_kernel_1": 3,
        "dropout": 0.1,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 16,
    }
    space = copy.deepcopy(DEFAULT)
    space["topology"] = ["fcn"]
    cfg = OmegaConf.create({"study": {"enqueue": [fcn]}})
    assert check_enqueue(cfg, parse_space(space)) == [fcn]
    space["model"]["conv_channels"]["high"] = 32  # 128 channels no longer fit
    assert check_enqueue(cfg, parse_space(space)) == []
    incomplete = OmegaConf.create({"study": {"enqueue": [{"topology": "fcn"}]}})
    with pytest.raises(ConfigError, match=r"study\.enqueue\[0\]"):
        check_enqueue(incomplete, parse_space(space))


def test_an_enqueued_design_may_leave_out_an_added_training_option_which_the_sampler_then_picks() -> None:
    from omegaconf import OmegaConf

    from hybridsearch.checks import check_enqueue

    space = {
        "topology": ["fcn"],
        "model": {},
        "training": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "augment": {"type": "categorical", "choices": ["none", "warp"]},
        },
    }
    design = {"topology": "fcn", "lr": 1e-3}
    cfg = OmegaConf.create({"study": {"enqueue": [design]}})
    assert check_enqueue(cfg, parse_space(space)) == [design]
    study = optuna.create_study()
    study.enqueue_trial(design)
    trial = study.ask()
    assert sample(trial, parse_space(space))["augment"] in ("none", "warp")
    assert trial.params["lr"] == 1e-3
