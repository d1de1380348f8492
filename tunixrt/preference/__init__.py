"""Preference optimisation after SFT (DPO, ORPO): pairs of a right and a wrong answer."""
