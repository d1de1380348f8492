"""tunixrt's config tree (Hydra), composed through `pkg://tunixrt.conf` under a pipeline's own
conf/config.yaml, which holds only what that pipeline changes."""
