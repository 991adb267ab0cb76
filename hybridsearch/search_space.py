"""The YAML search space: validation, sampling and rebuilding a model from a trial's parameters.

A space (``conf/space/default.yaml``) has three keys::

    topology: [feature_extractor, parallel, cascade, conv_gated]
    model:      # hyperparameters of the topologies, by constructor argument name
      pool_size: {type: int, low: 2, high: 4, topologies: [feature_extractor, cascade], when: {pool: [max, avg]}}
    training:   # optimiser, loader and recipe: lr, weight_decay, batch_size, warmup, label_smoothing, augment
      lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    data:       # forecasting only: lookback, the steps each window reads
      lookback: {type: categorical, choices: [24, 36, 48]}

A parameter is sampled only when the trial's topology is in its ``topologies``
(default: every topology whose constructor takes it) and every ``when``
condition holds. ``per_layer: conv_layers`` samples ``<name>_1 .. <name>_n``,
one per layer, which the model receives as a list.

Everything here is a pure function of the space and the parameters, so any
trial can be re-created from ``trial.params`` alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from hybridsearch.augment import AUGMENTATIONS
from hybridsearch.errors import SpaceError
from hybridsearch.models import TOPOLOGIES

TYPES = ("categorical", "int", "float")
TRAINING_KEYS = ("lr", "weight_decay", "batch_size", "warmup", "label_smoothing", "augment")
DATA_KEYS = ("lookback",)
SECTIONS = {"training": TRAINING_KEYS, "data": DATA_KEYS}
SPEC_KEYS = {"type", "choices", "low", "high", "log", "step", "topologies", "when", "per_layer"}
# Arguments that the space never sets directly: the data decides them, or resolve() derives them.
DERIVED = {"in_channels", "n_outputs", "seq_len", "pool_layers"}


@dataclass(frozen=True)
class Param:
    """One entry of the space."""

    name: str
    type: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    topologies: frozenset[str] = frozenset()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    per_layer: str | None = None

    def applies(self, params: Mapping[str, Any]) -> bool:
        """Whether this parameter is sampled, given the ones sampled so far."""
        if params["topology"] not in self.topologies:
            return False
        return all(params.get(key) in values for key, values in self.when.items())

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take."""
        if self.type == "categorical":
            return value in self.choices
        return self.low <= value <= self.high

    def suggest(self, trial: Any, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Space:
    """A validated search space."""

    topologies: tuple[str, ...]
    model: tuple[Param, ...]
    training: tuple[Param, ...]
    data: tuple[Param, ...] = ()

    @property
    def params(self) -> tuple[Param, ...]:
        return self.data + self.model + self.training


def constructor_args(topology: str) -> set[str]:
    """Keyword arguments a topology's constructor takes, besides the data's dimensions."""
    return set(inspect.signature(TOPOLOGIES[topology]).parameters) - DERIVED


def _parse_param(key: str, name: str, spec: Any, topologies: tuple[str, ...]) -> Param:
    where = f"{key}.{name}"
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{where}: expected a mapping such as {{type: int, low: 1, high: 3}}, got {spec!r}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(SPEC_KEYS)}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise SpaceError(f"{where}.type: unknown type {kind!r}; valid types: {', '.join(TYPES)}")
    for_topologies = spec.get("topologies")
    if for_topologies is None:
        for_topologies = [t for t in TOPOLOGIES if name in constructor_args(t)] if key == "space.model" else TOPOLOGIES
        if not for_topologies and not spec.get("per_layer"):
            raise SpaceError(f"{where}: no topology takes {name!r}; list the topologies that use it in 'topologies'")
    for t in for_topologies:
        if t not in TOPOLOGIES:
            raise SpaceError(f"{where}.topologies: unknown topology {t!r}; valid: {', '.join(TOPOLOGIES)}")
    param = Param(
        name=name,
        type=kind,
        choices=tuple(spec.get("choices") or ()),
        topologies=frozenset(for_topologies) & frozenset(topologies),
        when={k: tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in (spec.get("when") or {}).items()},
        per_layer=spec.get("per_layer"),
        log=bool(spec.get("log", False)),
    )
    if kind == "categorical":
        if not param.choices:
            raise SpaceError(f"{where}.choices: a categorical parameter needs a non-empty list of choices")
        return param
    spec = {k: v for k, v in spec.items() if v is not None}  # the config schema fills absent keys with None
    for key in ("low", "high", "step"):
        try:
            if key in spec and not isinstance(spec[key], bool):
                float(spec[key])
        except (TypeError, ValueError):
            raise SpaceError(f"{where}.{key}: must be a number, got {spec[key]!r}") from None
    try:
        low, high = float(spec["low"]), float(spec["high"])
        step = None if spec.get("step") is None else float(spec["step"])
    except KeyError as missing:
        raise SpaceError(f"{where}: an {kind} parameter needs 'low' and 'high'; {missing} is missing") from None
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: low, high and step must be numbers, got {dict(spec)}") from None
    if low > high:
        raise SpaceError(f"{where}: low ({spec['low']}) is greater than high ({spec['high']})")
    if param.log and low <= 0:
        raise SpaceError(f"{where}: log: true needs low > 0, got low={spec['low']}")
    if param.log and step is not None:
        raise SpaceError(f"{where}: use either log: true or step, not both")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise SpaceError(f"{where}: an int parameter needs whole low and high, got {spec['low']}, {spec['high']}")
    return replace(param, low=low, high=high, step=step)


def parse_space(space: Mapping[str, Any]) -> Space:
    """Validate a space (a dict or an OmegaConf node) and return it parsed.

    Raises:
        SpaceError: with a one-line message naming the offending key.
    """
    unknown = set(space) - {"topology", "model", "training", "data"}
    if unknown:
        raise SpaceError(f"space: unknown key(s) {sorted(unknown)}; valid keys: topology, model, training, data")
    topologies = space.get("topology")
    if isinstance(topologies, str):
        topologies = [topologies]
    if not topologies:
        raise SpaceError(f"space.topology: list at least one topology from {', '.join(TOPOLOGIES)}")
    for t in topologies:
        if t not in TOPOLOGIES:
            raise SpaceError(f"space.topology: unknown topology {t!r}; valid: {', '.join(TOPOLOGIES)}")
    topologies = tuple(dict.fromkeys(topologies))
    sections: dict[str, tuple[Param, ...]] = {}
    for section in ("model", "training", "data"):
        key = f"space.{section}"
        entries = space.get(section) or {}
        if not isinstance(entries, Mapping):
            raise SpaceError(f"{key}: expected a mapping of parameter name to spec")
        sections[section] = tuple(_parse_param(key, str(n), s, topologies) for n, s in entries.items())
    _check_references(sections)
    return Space(topologies, sections["model"], sections["training"], sections["data"])


def _check_references(sections: dict[str, tuple[Param, ...]]) -> None:
    seen: dict[str, Param] = {}
    counts = {p.per_layer for p in sections["model"] if p.per_layer}
    for section, keys in SECTIONS.items():
        for p in sections[section]:
            if p.name not in keys:
                raise SpaceError(f"space.{section}.{p.name}: unknown {section} parameter; valid: {', '.join(keys)}")
            if p.name == "augment" and (p.type != "categorical" or not set(p.choices) <= set(AUGMENTATIONS)):
                raise SpaceError(f"space.training.augment: categorical with choices among {', '.join(AUGMENTATIONS)}")
    for p in sections["model"]:
        where = f"space.model.{p.name}"
        for key, values in p.when.items():
            if key not in seen:
                raise SpaceError(f"{where}.when: {key!r} is not a parameter listed above {p.name!r}")
            if seen[key].type == "categorical" and not set(values) <= set(seen[key].choices):
                raise SpaceError(f"{where}.when: {key} values {list(values)} not in its choices")
        if p.per_layer is not None:
            layers = seen.get(p.per_layer)
            if layers is None or layers.type != "int":
                raise SpaceError(f"{where}.per_layer: {p.per_layer!r} must name an int parameter listed above")
        if p.name not in counts:
            for t in p.topologies:
                if p.name not in constructor_args(t):
                    valid = ", ".join(sorted(constructor_args(t)))
                    raise SpaceError(f"{where}: topology {t!r} takes no {p.name!r}; it takes {valid}")
        seen[p.name] = p


def sample(trial: Any, space: Space) -> dict[str, Any]:
    """Sample one configuration from ``trial`` (an optuna Trial or FixedTrial).

    Only the parameters that the sampled topology uses are suggested.
    """
    params: dict[str, Any] = {"topology": trial.suggest_categorical("topology", list(space.topologies))}
    for p in space.params:
        if not p.applies(params):
            continue
        if p.per_layer is None:
            params[p.name] = p.suggest(trial, p.name)
        else:
            for i in range(1, params[p.per_layer] + 1):
                params[f"{p.name}_{i}"] = p.suggest(trial, f"{p.name}_{i}")
    return params


def model_arguments(params: Mapping[str, Any], seq_len: int) -> tuple[dict[str, Any], list[str]]:
    """Turn flat trial parameters into constructor arguments for the trial's topology.

    Combinations that cannot run on a series of ``seq_len`` steps are clamped:
    a window longer than the series, or pooling that would shrink it below one
    step. Returns the arguments and one human-readable note per adjustment.
    """
    topology = params["topology"]
    accepted = constructor_args(topology)
    layers = params.get("conv_layers")
    kwargs: dict[str, Any] = {}
    for name in accepted:
        if name in params:
            kwargs[name] = params[name]
        elif layers is not None and f"{name}_1" in params:
            kwargs[name] = [params[f"{name}_{i}"] for i in range(1, layers + 1)]
    notes: list[str] = []
    steps = seq_len
    for window in ("patch_len", "lstm_patch"):
        if kwargs.get(window, 0) > seq_len:
            notes.append(f"{window} {kwargs[window]} -> {seq_len}: longer than the series")
            kwargs[window] = seq_len
    steps = kwargs.get("patch_len", seq_len)
    pool, size = kwargs.get("pool", "none"), kwargs.get("pool_size", 1)
    if pool != "none" and size > 1 and "conv_channels" in kwargs:
        n = len(kwargs["conv_channels"])
        fits = 0
        while fits < n and steps // size ** (fits + 1) >= 1:
            fits += 1
        if fits < n:
            notes.append(
                f"pooling after {fits} of {n} conv layers: {n} poolings of {size} would shrink {steps} steps below 1"
            )
            kwargs["pool_layers"] = fits
    return kwargs, notes


def build_model(
    params: Mapping[str, Any] | Any, *, in_channels: int, n_outputs: int | tuple[int, ...], seq_len: int
) -> nn.Module:
    """Rebuild a trial's model from its parameters alone.

    Args:
        params: a plain dict, an optuna ``FrozenTrial`` or a sampled ``FixedTrial``
            (anything with ``.params``), holding at least ``topology``.
        in_channels, n_outputs, seq_len: the data's dimensions.

    Example:
        >>> import torch
        >>> m = build_model({"topology": "lstm", "lstm_hidden": 8}, in_channels=1, n_outputs=2, seq_len=20)
        >>> m(torch.zeros(3, 1, 20)).shape
        torch.Size([3, 2])
    """
    if not isinstance(params, Mapping):
        params = params.params
    if params.get("topology") not in TOPOLOGIES:
        raise SpaceError(f"topology: unknown or missing {params.get('topology')!r}; valid: {', '.join(TOPOLOGIES)}")
    kwargs, _ = model_arguments(params, seq_len)
    return TOPOLOGIES[params["topology"]](in_channels, n_outputs, seq_len, **kwargs)


def training_arguments(params: Mapping[str, Any]) -> dict[str, Any]:
    """The sampled optimiser / loader settings of a trial."""
    return {k: params[k] for k in TRAINING_KEYS if k in params}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "Param",
    "Space",
    "SpaceError",
    "build_model",
    "count_parameters",
    "model_arguments",
    "parse_space",
    "sample",
    "training_arguments",
]
