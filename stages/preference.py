"""DVC stage `preference`: DPO or ORPO after SFT (preference.enabled) -> runs/preference/."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("preference")
