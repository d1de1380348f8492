"""DVC stage `export`: dataset splits -> data/export/{train,val,test}.jsonl in the chosen format."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("export")
