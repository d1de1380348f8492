"""DVC stage `rl`: GRPO on the SFT checkpoint (rl.enabled) -> runs/rl/."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("rl")
