"""The network plan: nnU-Net's PlainConvUNet topology, as a typed, serialisable object.

One plan describes teacher and student alike; they differ only in input channels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from glioedge.config_keys import reject_unknown_keys
from glioedge.errors import ConfigError


@dataclass(frozen=True)
class NetworkPlan:
    """Topology of a 3-D PlainConvUNet (dynamic-network-architectures).

    Attributes:
        name: preset name, recorded for provenance.
        features_per_stage: channels of each encoder stage; its length is the number of stages.
        strides: per-stage isotropic pooling stride (stage 0 is 1).
        kernel_size: isotropic convolution kernel.
        n_conv_per_stage: convolutions per encoder stage (nnU-Net: 2).
        n_conv_per_stage_decoder: convolutions per decoder stage (nnU-Net: 2).
        patch_size: training patch and inference window, (i, j, k) voxels.
        negative_slope: LeakyReLU slope (nnU-Net: 0.01).
    """

    name: str
    features_per_stage: tuple[int, ...]
    strides: tuple[int, ...]
    patch_size: tuple[int, int, int]
    kernel_size: int = 3
    n_conv_per_stage: int = 2
    n_conv_per_stage_decoder: int = 2
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        if len(self.features_per_stage) != len(self.strides):
            raise ConfigError(
                f"plan {self.name!r}: features_per_stage has {len(self.features_per_stage)} "
                f"entries but strides has {len(self.strides)}; they must match (one per stage)"
            )
        if self.strides[0] != 1:
            raise ConfigError(f"plan {self.name!r}: the first stage stride must be 1")
        div = self.divisor
        bad = [p for p in self.patch_size if p % div]
        if bad:
            raise ConfigError(
                f"plan {self.name!r}: patch size {self.patch_size} must be a multiple of "
                f"{div} (the product of the strides) along every axis"
            )
        if min(self.patch_size) // div < 2 and len(self.strides) > 4:
            raise ConfigError(
                f"plan {self.name!r}: patch {self.patch_size} collapses the deepest stage to "
                f"{min(self.patch_size) // div} voxel(s); use a larger patch or fewer stages"
            )

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)

    @property
    def divisor(self) -> int:
        """Spatial sizes must be multiples of this (the product of all strides)."""
        d = 1
        for s in self.strides:
            d *= s
        return d

    @property
    def bottleneck_channels(self) -> int:
        return self.features_per_stage[-1]

    def with_patch(self, patch_size: tuple[int, int, int]) -> NetworkPlan:
        """The same topology with another patch size."""
        return replace(self, patch_size=tuple(int(p) for p in patch_size))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features_per_stage"] = list(self.features_per_stage)
        d["strides"] = list(self.strides)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkPlan:
        reject_unknown_keys(cls, d, "network plan")
        return cls(
            **{
                **d,
                "features_per_stage": tuple(d["features_per_stage"]),
                "strides": tuple(d["strides"]),
                "patch_size": tuple(d["patch_size"]),
            }
        )


#: nnU-Net's BraTS 3d_fullres plan: 6 stages, 32→320 features, patch 128³.
NNUNET = NetworkPlan(
    name="nnunet",
    features_per_stage=(32, 64, 128, 256, 320, 320),
    strides=(1, 2, 2, 2, 2, 2),
    patch_size=(128, 128, 128),
)
#: CPU-sized plan for demos: 4 stages, 8→64 features (a joint KD step at 64³ takes ~2 s on 2 cores).
SMALL = NetworkPlan(
    name="small",
    features_per_stage=(8, 16, 32, 64),
    strides=(1, 2, 2, 2),
    patch_size=(64, 64, 64),
)
#: The smallest plan that still has nnU-Net's shape: for unit tests.
TINY = NetworkPlan(
    name="tiny",
    features_per_stage=(4, 8, 16, 32),
    strides=(1, 2, 2, 2),
    patch_size=(32, 32, 32),
)

PRESETS: dict[str, NetworkPlan] = {p.name: p for p in (NNUNET, SMALL, TINY)}


def get_preset(name: str) -> NetworkPlan:
    """The preset plan called ``name``.

    Raises:
        ConfigError: no such preset.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
