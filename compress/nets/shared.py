"""Layers whose weight is computed from shared parameters while training, with a plain state dict.

Weight clustering (codebook[indices]) and hashed weights (±buckets[hash(i)]) train parameters that are
not the weight itself. ``share_weight`` turns a conv in place into a subclass whose ``weight`` is
``make(module)`` on every access (so autograd sums the gradients of a shared value's members), while its
``state_dict`` still holds ``weight`` and ``bias`` exactly like the plain layer: checkpoints written in
the middle of training (``compress.train``) load into a plain ``StackedHourglass``, and loading one back
(resume) sets the shared parameters through ``load``. ``unshare_weight`` materialises the weight and
restores the plain class.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

Make = Callable[[nn.Module], torch.Tensor]
Load = Callable[[nn.Module, torch.Tensor], None]
_CLASSES: dict[type, type] = {}


class _Shared:
    """Mixin placed before the layer's own class: ``weight`` is computed, the state dict stays plain."""

    def __getattr__(self, name: str) -> Any:
        if name == "weight":
            return self.__dict__["_shared_make"](self)
        return super().__getattr__(name)  # type: ignore[misc]

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        weight = self.__dict__["_shared_make"](self)
        destination[prefix + "weight"] = weight if keep_vars else weight.detach()
        bias = self._parameters.get("bias")  # type: ignore[attr-defined]
        if bias is not None:
            destination[prefix + "bias"] = bias if keep_vars else bias.detach()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        names = ["weight"] + (["bias"] if self._parameters.get("bias") is not None else [])  # type: ignore[attr-defined]
        for name in names:
            if prefix + name not in state_dict:
                missing_keys.append(prefix + name)
        if prefix + "weight" in state_dict:
            try:
                self.__dict__["_shared_load"](self, state_dict[prefix + "weight"])
            except ValueError as exc:
                error_msgs.append(f"{prefix}weight: {exc}")
        if "bias" in names and prefix + "bias" in state_dict:
            with torch.no_grad():
                self._parameters["bias"].copy_(state_dict[prefix + "bias"])  # type: ignore[attr-defined]


def _shared_class(base: type) -> type:
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Shared{base.__name__}", (_Shared, base), {"__module__": __name__})
    return _CLASSES[base]


def is_shared(module: nn.Module) -> bool:
    """True while ``module`` computes its weight from shared parameters."""
    return isinstance(module, _Shared)


def share_weight(module: nn.Module, parameters: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 make: Make, load: Load) -> None:
    """Replace ``module.weight`` by ``make(module)`` over new ``parameters`` (trained) and ``buffers`` (fixed)."""
    if is_shared(module):
        raise ValueError(f"{type(module).__name__} already shares its weight")
    del module._parameters["weight"]
    for name, value in parameters.items():
        module.register_parameter(name, nn.Parameter(value))
    for name, value in buffers.items():
        module.register_buffer(name, value, persistent=False)
    module.__dict__["_shared_make"], module.__dict__["_shared_load"] = make, load
    module.__dict__["_shared_names"] = (tuple(parameters), tuple(buffers))
    module.__class__ = _shared_class(type(module))


def unshare_weight(module: nn.Module) -> None:
    """Materialise the computed weight as a plain parameter and restore the layer's own class."""
    if not is_shared(module):
        return
    with torch.no_grad():
        weight = module.__dict__["_shared_make"](module).detach().clone()
    params, buffers = module.__dict__.pop("_shared_names")
    for name in params:
        del module._parameters[name]
    for name in buffers:
        del module._buffers[name]
    del module.__dict__["_shared_make"], module.__dict__["_shared_load"]
    module.__class__ = type(module).__mro__[2]
    rest = dict(module._parameters)  # weight first again, as the plain layer orders its state dict
    module._parameters.clear()
    module._parameters["weight"] = nn.Parameter(weight)
    module._parameters.update(rest)
