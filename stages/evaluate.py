"""DVC stage `evaluate`: the model before and after training -> runs/eval/."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("evaluate")
