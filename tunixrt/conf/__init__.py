"""tunixrt's config tree (Hydra), composed through `pkg://tunixrt.conf` under a pipeline's own
conf/config.yaml, which holds only what that pipeline changes."""

from pathlib import Path

CONF_DIR = Path(__file__).parent


def group_options(group: str) -> list[str]:
    """A config group's options: the names of its folder's *.yaml files."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
