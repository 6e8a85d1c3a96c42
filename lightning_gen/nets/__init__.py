"""Plain ``nn.Module`` networks handed to the LightningModules."""

from lightning_gen.nets.image import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
