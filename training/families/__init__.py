"""GAN families, one module each (networks, losses, step phases), found automatically by training.registry."""
