"""The `gan` command: one entry point over training, export, evaluation and the augmentation job."""
