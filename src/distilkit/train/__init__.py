"""Training: the general-distillation recipe, the shared step machinery, exact checkpoints."""
