"""Generator architectures, one self-contained file each. `ARCHITECTURES` maps the name stored
in our checkpoint files to (class, config dataclass) so a file rebuilds its model."""
from .base import Generator
from .biggan import BigGANConfig, BigGANGenerator
from .cdcgan import CDCGANConfig, CDCGANGenerator
from .dcgan import DCGANConfig, DCGANGenerator
from .sngan import SNGANConfig, SNGANGenerator
from .stylegan2 import StyleGAN2Config, StyleGAN2Generator

ARCHITECTURES: dict[str, tuple[type, type]] = {
    "sngan": (SNGANGenerator, SNGANConfig),
    "dcgan": (DCGANGenerator, DCGANConfig),
    "stylegan2": (StyleGAN2Generator, StyleGAN2Config),
    "biggan": (BigGANGenerator, BigGANConfig),
    "cdcgan": (CDCGANGenerator, CDCGANConfig),
}

__all__ = ["Generator", "ARCHITECTURES", "SNGANGenerator", "SNGANConfig", "DCGANGenerator", "DCGANConfig",
           "StyleGAN2Generator", "StyleGAN2Config", "BigGANGenerator", "BigGANConfig",
           "CDCGANGenerator", "CDCGANConfig"]
