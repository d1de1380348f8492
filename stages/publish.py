"""DVC stage `publish`: the trained policy in the Hugging Face layout -> runs/publish/."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("publish")
