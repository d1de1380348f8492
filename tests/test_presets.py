"""One-word presets for real models: tunix-rt's training values, and a warning when a real
checkpoint would be trained with the tiny CPU model's values."""

from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_pipeline, tunixrt

from tunixrt.compose import compose

TUNIX_RT = {"learning_rate": 2e-5, "num_epochs": 3, "batch_size": 8, "max_seq_length": 2048}


def test_gemma_2b_it_lora_tpu_manifest_has_tunix_rt_values(tmp_path: Path) -> None:
    root = make_pipeline(tmp_path / "p", git=False)  # smoke data stages: quick
    for stage in ("ingest", "dataset", "export"):
        tunixrt("run", stage, cwd=root)
    composed = tunixrt("compose", "experiment=gemma_2b_it_lora_tpu", cwd=root)
    assert "warning" not in composed.stderr
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["model"]["model_id"] == "google/gemma-2b-it"
    # the weights are not downloaded yet: the manifest stage says so, before any training
    refused = tunixrt("run", "manifest", "experiment=gemma_2b_it_lora_tpu", cwd=root, check=False)
    assert refused.returncode == 2 and "models/gemma-2b-it/tokenizer.model" in refused.stderr
    download = root / "models/gemma-2b-it"  # stand-ins: the manifest stage only digests them
    download.mkdir(parents=True)
    (download / "tokenizer.model").write_bytes(b"a tokenizer")
    (download / "model.safetensors").write_bytes(b"some weights")
    tunixrt("run", "manifest", "experiment=gemma_2b_it_lora_tpu", cwd=root)
    m = yaml.safe_load((root / "data/export/run_manifest.yaml").read_text())
    assert m["model"]["model_id"] == "google/gemma-2b-it"
    assert (m["model"]["family"], m["model"]["preset"]) == ("gemma", "gemma_2b_it")
    assert m["model"]["tokenizer"]["kind"] == "sentencepiece"
    assert {k: m["training"][k] for k in TUNIX_RT} == TUNIX_RT
    assert m["training"]["lora"]["enabled"] and m["runtime"]["name"] == "tpu_v5e_8"
    # tunix-rt's trainer: AdamW at a constant rate (no warm-up, no decay, no clipping)
    t = m["training"]
    assert (t["warmup_ratio"], t["end_lr_ratio"], t["max_grad_norm"]) == (0.0, 1.0, None)


@pytest.mark.parametrize(
    ("experiment", "runtime"),
    [
        ("gemma3_1b_lora_gpu", "gpu"),
        ("gemma3_270m_full_cpu", "cpu"),
        ("gemma4_e2b_lora_tpu", "tpu"),
    ],
)
def test_presets_compose_a_coherent_real_run(experiment: str, runtime: str, capfd) -> None:
    p = compose(REPO, [f"experiment={experiment}"])
    assert p["model"]["preset"] != "tiny" and p["runtime"]["platform"] == runtime
    assert p["train"]["learning_rate"] == 2e-5
    assert "warning" not in capfd.readouterr().err


def test_real_model_with_tiny_train_values_warns(capfd) -> None:
    compose(REPO, ["model=gemma3_270m"])
    err = capfd.readouterr().err
    assert "warning: model google/gemma-3-270m-it" in err and "train=tunix_rt" in err
    compose(REPO, [])  # the tiny default: no warning
    assert "warning" not in capfd.readouterr().err


MODELS = sorted(p.stem for p in (REPO / "tunixrt/conf/model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_file_composes_with_tunix_rt_values(model: str, capfd) -> None:
    from tunixrt.chat_templates import FAMILY_TEMPLATES
    from tunixrt.manifest.schema import ModelSection

    m = ModelSection.model_validate(compose(REPO, [f"model={model}", "train=tunix_rt"])["model"])
    assert "warning" not in capfd.readouterr().err
    if m.preset != "tiny":  # real weights: where the download command of its comment puts them
        assert m.checkpoint_path and m.checkpoint_path.startswith("models/")
        assert m.tokenizer.path and m.tokenizer.path.startswith(m.checkpoint_path + "/")
        # Gemma 1-3 ship tokenizer.model; Gemma 4, Qwen and Llama their tokenizer.json
        kind = "sentencepiece" if m.family in ("gemma", "gemma3") else "huggingface"
        assert m.tokenizer.kind == kind
    if m.tokenizer.kind == "huggingface":
        assert m.tokenizer.chat_template == FAMILY_TEMPLATES[m.family]
