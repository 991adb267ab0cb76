"""Every shipped config composes and builds, and the schema catches mistakes while Hydra composes."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hybridsearch.config import DataConfig, data_config, register_configs
from hybridsearch.search_space import parse_space

CONF = Path(__file__).parents[1] / "conf"


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(*overrides: str):
    register_configs()
    with initialize_config_module("hybridsearch.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_every_group_has_options() -> None:
    assert len(names("study")) >= 3 and "timeseries" in names("study")
    assert {"tpe", "random"} <= set(names("sampler")) and {"percentile", "none"} <= set(names("pruner"))


@pytest.mark.parametrize("study", names("study"))
@pytest.mark.parametrize("sampler", names("sampler"))
def test_each_study_composes_with_each_sampler_and_builds(study: str, sampler: str) -> None:
    cfg = compose_with(f"+study={study}", f"sampler={sampler}")
    space = parse_space(OmegaConf.to_container(cfg.space, resolve=True))
    assert space.topologies
    built = instantiate(cfg.sampler)
    assert type(built).__name__.endswith("Sampler")
    assert isinstance(data_config(cfg.data), DataConfig) and data_config(cfg.data).task == cfg.data.task


@pytest.mark.parametrize("pruner", names("pruner"))
def test_each_pruner_composes_and_builds(pruner: str) -> None:
    cfg = compose_with("+study=timeseries", f"pruner={pruner}")
    assert type(instantiate(cfg.pruner)).__name__.endswith("Pruner")


def test_callbacks_build_as_lightning_callbacks() -> None:
    import lightning as L

    cfg = compose_with("+study=timeseries")
    for node in cfg.callbacks.values():
        assert isinstance(instantiate(node), L.Callback)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("space.model.lstm_hidden.hihg=64", "hihg"),
        ("space.model.dropout.low=abc", "low"),
        ("study.n_trails=3", "n_trails"),
        ("data.val_fraction=much", "val_fraction"),
    ],
)
def test_the_schema_refuses_a_misspelt_key_or_a_wrong_type_while_composing(override: str, named: str) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_with("+study=timeseries", override)
    assert named in str(err.value) + str(err.value.__cause__)


def test_every_enqueued_design_holds_when_the_convlstm_is_searched_bidirectional_too() -> None:
    """The ConvLSTM's ``bidirectional`` is not searched by default; a user who adds it keeps the
    study's four known-good designs (each names it), and the flag reaches the model."""
    from hybridsearch.checks import check_enqueue
    from hybridsearch.search_space import build_model

    cfg = compose_with(
        "+study=timeseries", "space.model.bidirectional.topologies=[feature_extractor,parallel,cascade,conv_gated]"
    )
    space = parse_space(OmegaConf.to_container(cfg.space, resolve=True))
    designs = check_enqueue(cfg, space)
    assert sorted(d["topology"] for d in designs) == sorted(space.topologies)
    convlstm = next(d for d in designs if d["topology"] == "conv_gated")
    one_way = build_model(convlstm, in_channels=1, n_outputs=2, seq_len=64)
    both_ways = build_model({**convlstm, "bidirectional": True}, in_channels=1, n_outputs=2, seq_len=64)
    assert len(one_way.backward_layers) == 0 and len(both_ways.backward_layers) == convlstm["lstm_layers"]
