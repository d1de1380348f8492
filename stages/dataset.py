"""DVC stage `dataset`: traces -> data/dataset/{train,val,test}.jsonl and manifest.json."""

from tunixrt.stages import main

if __name__ == "__main__":
    main("dataset")
