"""DVC stage `train`: run_manifest.yaml + exports -> runs/train/ (checkpoints, metrics, DVCLive)."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("train")
