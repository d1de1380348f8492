"""Sequence length is a decision the user sees: before any model is built, the manifest stage
counts the training examples longer than train.max_seq_length (with the run's tokenizer, as
training encodes them), stops (exit 2) above train.max_truncated_share with the numbers and the
key to change, and records the distribution for the report; the train stage enforces the same
bound before it builds the model."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO, fixtures_in, sh

from tunixrt.errors import ConfigError
from tunixrt.lineage import stage_closure
from tunixrt.manifest.build import build_run_manifest, run
from tunixrt.manifest.load import load_run_manifest
from tunixrt.paths import RUN_MANIFEST
from tunixrt.stages import STAGES, select
from tunixrt.train import checkpoints
from tunixrt.train.lengths import check_lengths, length_stats, suggested_max_seq_length

# tunix-rt's dev traces (383 training examples) with the demo model (tiny_gemma3, byte
# tokenizer, max_seq_length 168): the token counts training uses, <bos>, markers, <eos> included
DEV_OVER = (
    "train.max_seq_length: 311 of 383 training examples (81.2%) are longer than 168 tokens "
    "(median 186, p95 261, longest 264)"
)
DEV_STOP = (
    f"{DEV_OVER}; above train.max_truncated_share 0.05. Raise train.max_seq_length "
    "(e.g. -S train.max_seq_length=512), or train.max_truncated_share to train on truncated "
    "examples"
)
DATA_STAGES = """
import sys
from pathlib import Path
from tunixrt.dataset.config import DatasetConfig
from tunixrt.dataset.stage import build_dataset
from tunixrt.export.stage import export, parse_format
from tunixrt.ingest.config import parse_source
from tunixrt.ingest.stage import ingest

root = Path(sys.argv[1])
source = {"kind": "files", "name": "dev-reasoning", "adapter": "reasoning_trace",
          "paths": ["fixtures/tunix-rt/dev-reasoning-v2.jsonl"]}
ingest(parse_source(source), root)
build_dataset(DatasetConfig(name="dev-reasoning"), root)
export(parse_format({"name": "tunix_sft"}), root)
heavy = ("tunixrt.train", "sentencepiece", "tokenizers", "jax")  # numpy is a base dependency
loaded = sorted(m for m in sys.modules if m.startswith(heavy))
assert not loaded, f"the data stages imported {loaded}"
"""
NO_JAX = """
import sys
from pathlib import Path
import yaml
from tunixrt.manifest.build import run
from tunixrt.stages import STAGES, select
root = Path(sys.argv[1])
params = yaml.safe_load((root / "params.yaml").read_text())
params["train"]["max_truncated_share"] = 1.0
run(select(params, STAGES["manifest"].params), root)
loaded = sorted(m for m in sys.modules if m.startswith(("jax", "sentencepiece", "tokenizers",
                                                         "numpy", "flax", "tunix.")))
assert not loaded, f"the manifest stage (byte tokenizer) imported {loaded}"
"""


def demo_params(**train: object) -> dict:
    """The committed default pipeline's params (the demo model), as the manifest stage sees
    them, with `train` values changed."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(train)
    return params


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tunix-rt's dev traces through ingest, dataset and export (in a child process that
    checks they import no tokenizer code), and the demo's params.yaml."""
    root = tmp_path_factory.mktemp("dev")
    fixtures_in(root, "dev-reasoning-v2.jsonl", "eval_v1.jsonl")  # eval_v1: the demo's eval set
    subprocess.run([sys.executable, "-c", DATA_STAGES, str(root)], check=True)
    (root / "params.yaml").write_text(yaml.safe_dump(demo_params(), sort_keys=False))
    return root


def manifest_params(**train: object) -> dict:
    return select(demo_params(**train), STAGES["manifest"].params)


def test_the_manifest_stage_stops_on_dev_traces_naming_share_and_key(dev: Path) -> None:
    proc = sh(str(BIN / "python"), "-m", "tunixrt.stages", "manifest", cwd=dev, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: {DEV_STOP}"
    assert not (dev / RUN_MANIFEST).exists()


def test_with_the_bound_raised_the_run_goes_on_and_records_the_distribution(
    dev: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run(manifest_params(max_truncated_share=0.9), dev)
    err = capfd.readouterr().err
    assert f"manifest: {DEV_OVER}; within train.max_truncated_share 0.9" in err
    lengths = load_run_manifest(dev).lengths
    assert lengths is not None
    assert (lengths.tokenizer, lengths.examples, lengths.over, lengths.dropped) == (
        "byte", 383, 311, 0
    )  # fmt: skip
    assert (lengths.median, lengths.p95, lengths.max, lengths.share) == (186, 261, 264, 0.81201)
    assert sum(lengths.histogram) == 383 and len(lengths.histogram) * lengths.bin_width > 264
    # the suggested value does what the message says it does
    run(manifest_params(max_seq_length=512), dev)
    fits = load_run_manifest(dev).lengths
    assert fits is not None and (fits.over, fits.max_seq_length) == (0, 512)
    assert "longer than" not in capfd.readouterr().err


def test_the_train_stage_enforces_the_same_bound_before_building_the_model(
    dev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check at the start of train (the only one when the manifest stage could not load
    the tokenizer): the same ConfigError, before any model exists."""
    from tunixrt.train import model as model_module
    from tunixrt.train.run import train

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was built")

    monkeypatch.setattr(model_module, "build_model", no_model)
    manifest = build_run_manifest(manifest_params(max_truncated_share=1.0), dev)
    strict = manifest.model_copy(
        update={
            "training": manifest.training.model_copy(update={"max_truncated_share": 0.05}),
            "lengths": None,  # as a manifest stage that could not load the tokenizer leaves it
        }
    )
    with pytest.raises(ConfigError) as exc:
        train(strict, dev)
    assert str(exc.value) == DEV_STOP


def test_a_tokenizer_the_manifest_stage_cannot_load_leaves_the_check_to_train(
    dev: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """pip install tunixrt without [train]: no sentencepiece. The stage says so and goes on;
    a file that does not load (a stand-in) is left to train as well."""
    (dev / "models/sp").mkdir(parents=True, exist_ok=True)
    (dev / "models/sp/tokenizer.model").write_bytes(b"a stand-in")
    params = manifest_params()
    params["model"]["tokenizer"] = {"kind": "sentencepiece", "path": "models/sp/tokenizer.model"}
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import sentencepiece fails
    assert build_run_manifest(params, dev).lengths is None
    err = capfd.readouterr().err
    assert (
        "manifest: the token-length check (train.max_seq_length, train.max_truncated_share) is "
        "left to the start of train: sentencepiece is not installed (tunixrt's `train` extra)"
    ) in err
    monkeypatch.delitem(sys.modules, "sentencepiece")
    pytest.importorskip("sentencepiece")
    assert build_run_manifest(params, dev).lengths is None
    assert "models/sp/tokenizer.model does not load" in capfd.readouterr().err


def test_no_data_stage_imports_tokenizer_code_and_the_byte_path_imports_no_jax(dev: Path) -> None:
    for name in ("ingest", "dataset", "export"):
        files = stage_closure(REPO, name, STAGES[name].target)
        assert not [f for f in files if f.startswith("tunixrt/train/")], name
    assert "tunixrt/train/tokenizer.py" in stage_closure(
        REPO, "manifest", STAGES["manifest"].target
    )
    subprocess.run([sys.executable, "-c", NO_JAX, str(dev)], check=True)


def test_the_run_fingerprint_ignores_the_lengths_and_the_bound(dev: Path) -> None:
    """The lengths derive from the fingerprinted data, tokenizer and max_seq_length; the bound
    changes no number: neither makes a rerun of train start over."""
    m = build_run_manifest(manifest_params(max_truncated_share=1.0), dev)
    base = checkpoints.run_fingerprint(m)
    assert m.lengths is not None
    assert checkpoints.run_fingerprint(m.model_copy(update={"lengths": None})) == base
    bound = m.training.model_copy(update={"max_truncated_share": 0.5})
    assert checkpoints.run_fingerprint(m.model_copy(update={"training": bound})) == base
    longer = m.training.model_copy(update={"max_seq_length": 512})
    assert checkpoints.run_fingerprint(m.model_copy(update={"training": longer})) != base


def test_stats_bound_and_suggestion() -> None:
    lengths = Counter({100: 90, 150: 5, 300: 4, 5000: 1})
    s = length_stats(lengths, max_len=128, dropped=1, tokenizer="byte")
    assert (s.examples, s.over, s.share, s.median, s.p95, s.max) == (100, 10, 0.1, 100, 150, 5000)
    assert sum(s.histogram) == 100 and s.histogram[0] == 95 and s.bin_width == 200
    assert check_lengths(s, 0.1) is not None  # at the bound: goes on, said on stderr
    with pytest.raises(ConfigError, match=r"10 of 100 .*\(10\.0%\).*1 of them are dropped"):
        check_lengths(s, 0.09)
    # the suggestion leaves at most the bound longer
    for bound in (0.0, 0.01, 0.05, 0.09):
        seq = suggested_max_seq_length(s, bound)
        assert sum(v for k, v in lengths.items() if k > seq) <= bound * 100, (bound, seq)
    assert suggested_max_seq_length(s, 0.05) == 256  # 95 in [0, 200), 5 longer
    none_over = length_stats(Counter({100: 3}), max_len=128, dropped=0, tokenizer="byte")
    assert check_lengths(none_over, 0.0) is None
    assert length_stats(Counter(), max_len=128, dropped=0, tokenizer="byte").examples == 0


def test_the_committed_default_pipeline_passes_the_default_bound() -> None:
    """The demo's own data (data/export/train.jsonl in the workspace) with params.yaml: no
    example is longer than max_seq_length 168."""
    from tunixrt.manifest.preflight import check_sequence_lengths
    from tunixrt.manifest.schema import ModelSection, TrainingSection

    split = REPO / "data/export/train.jsonl"
    if not split.is_file():
        pytest.skip("data/export/train.jsonl: not in this checkout (dvc pull / dvc repro)")
    params = demo_params()
    model = ModelSection.model_validate(params["model"])
    training = TrainingSection.model_validate(params["train"])
    lengths = check_sequence_lengths(model, training, REPO, split)
    assert lengths is not None and lengths.over == 0 and lengths.max <= 168
    assert training.max_truncated_share == 0.05
