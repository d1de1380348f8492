"""The config reference is the code: every field of every pydantic model in tunixrt says what it
is (MaxText's configs/types.py habit)."""

import importlib
import inspect
import pkgutil

from pydantic import BaseModel

import tunixrt


def tunixrt_models() -> list[type[BaseModel]]:
    found = {}
    for info in pkgutil.walk_packages(tunixrt.__path__, "tunixrt."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseModel) and obj.__module__.startswith("tunixrt."):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


def test_every_field_of_every_model_has_a_description() -> None:
    models = tunixrt_models()
    names = {m.__name__ for m in models}
    assert {"PipelineConfig", "RunManifest", "TrainingSection", "EvalConfig", "Trace"} <= names
    missing = [
        f"{m.__module__}.{m.__qualname__}.{name}"
        for m in models
        for name, field in m.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert missing == []
