"""DVC stage `report`: dataset, training and evaluation summaries -> runs/report.md."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("report")
