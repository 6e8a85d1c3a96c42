"""Plain ``nn.Module`` networks handed to the LightningModules."""

from lightning_gen.nets.image import (
    ConvEncoder,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
)
from lightning_gen.nets.sequence import LSTMGenerator, RecurrentDecoder, RecurrentDiscriminator, RecurrentEncoder

__all__ = ["ConvEncoder", "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
__all__ += ["LSTMGenerator", "RecurrentDecoder", "RecurrentDiscriminator", "RecurrentEncoder"]
