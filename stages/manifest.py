"""DVC stage `manifest`: exports + model/train/runtime params -> run_manifest.yaml."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("manifest")
