"""Training with Tunix's PeftTrainer: tokenizers, batches, model, optimizer, trainer, reports.

The entry point is `tunixrt.train.run.train(manifest, root)`. Importing this package does not
import JAX (the runtime's platform flags must be set first).
"""
