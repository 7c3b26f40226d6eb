"""Generator and discriminator networks, registered by name in `training.registry`."""
