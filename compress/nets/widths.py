"""Per-layer channel widths: read them off a (pruned) model and impose them on a freshly built one.

Structured pruning leaves layers narrower than the config's nominal ``features``. Recording each
changed layer's channel spec in ``config.widths`` lets ``StackedHourglass(config)`` rebuild it exactly.
"""
from __future__ import annotations

from torch import nn

from compress.errors import HGCError

_CONV = (nn.Conv2d, nn.ConvTranspose2d)


def layer_spec(module: nn.Module) -> list[int] | None:
    """Channel spec of a resizable layer: [out, in, groups] for convs, [C] / [C, groups] for norms."""
    if isinstance(module, _CONV):
        return [module.out_channels, module.in_channels, module.groups]
    if isinstance(module, nn.BatchNorm2d):
        return [module.num_features]
    if isinstance(module, nn.GroupNorm):
        return [module.num_channels, module.num_groups]
    spec = getattr(module, "width_spec", None)
    return spec() if callable(spec) else None


def resized(module: nn.Module, spec: list[int]) -> nn.Module:
    """A fresh copy of ``module``'s layer type with the channel spec ``spec`` (weights re-initialised)."""
    if isinstance(module, nn.Conv2d) and len(spec) == 3:
        out, cin, groups = spec
        return nn.Conv2d(cin, out, module.kernel_size, module.stride, module.padding, module.dilation,
                         groups, module.bias is not None)
    if isinstance(module, nn.ConvTranspose2d) and len(spec) == 3:
        out, cin, groups = spec
        return nn.ConvTranspose2d(cin, out, module.kernel_size, module.stride, module.padding,
                                  module.output_padding, groups, module.bias is not None, module.dilation)
    if isinstance(module, nn.BatchNorm2d) and len(spec) == 1:
        return nn.BatchNorm2d(spec[0], module.eps, module.momentum, module.affine, module.track_running_stats)
    if isinstance(module, nn.GroupNorm) and len(spec) == 2:
        return nn.GroupNorm(spec[1], spec[0], module.eps, module.affine)
    if hasattr(module, "resized"):
        return module.resized(spec)
    raise HGCError(f"config.widths: cannot give {type(module).__name__} the channel spec {spec}")


def apply_widths(model: nn.Module, widths: dict[str, list[int]]) -> None:
    """Replace each named layer by one of the recorded width (names are ``model.named_modules`` paths)."""
    for name, spec in widths.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise HGCError(f"config.widths: no layer named {name!r} in this architecture") from None
        if not isinstance(spec, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in spec):
            raise HGCError(f"config.widths[{name!r}]: expected positive integers, got {spec!r}")
        model.set_submodule(name, resized(module, list(spec)))


def derive_widths(model: nn.Module, nominal: nn.Module) -> dict[str, list[int]]:
    """Layers whose channel spec differs from the nominal model's: what ``config.widths`` must record."""
    reference = dict(nominal.named_modules())
    widths = {}
    for name, module in model.named_modules():
        spec = layer_spec(module)
        if spec is not None and name in reference and spec != layer_spec(reference[name]):
            widths[name] = spec
    return widths
