"""The whole pipeline, train and evaluate included, through DVC on the smoke preset."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_pipeline, sh, tunixrt
from test_experiments import exp_results

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipeline = make_pipeline(tmp_path_factory.mktemp("smoke") / "pipe")
    tunixrt("compose", "experiment=smoke", cwd=pipeline)
    sh("git", "commit", "-q", "--allow-empty", "-am", "smoke", cwd=pipeline)
    sh("dvc", "repro", cwd=pipeline)
    return pipeline


def test_smoke_pipeline_repro_plots_metrics_and_exp_show(smoke_run: Path) -> None:
    pipeline = smoke_run

    train = json.loads((pipeline / "runs/train/metrics.json").read_text())
    assert train["steps"] == 4 and train["loss_last"] < train["loss_first"]
    ev = json.loads((pipeline / "runs/eval/metrics.json").read_text())
    assert ev["before"]["n"] == ev["after"]["n"] == 8
    assert set(ev) >= {"before", "after", "delta"}
    summary = json.loads((pipeline / "runs/summary.json").read_text())
    assert list(summary)[:3] == ["exact_match_before", "exact_match_after", "exact_match_gain"]
    assert summary["exact_match_after"] == ev["after"]["exact_match"]
    assert summary["train_loss_last"] == train["loss_last"] and summary["train_steps"] == 4
    assert "exact match on 8 held-out problems" in (pipeline / "runs/report.md").read_text()
    assert sh("dvc", "status", "--json", cwd=pipeline).stdout.strip() in ("{}", "")

    shown = sh("dvc", "metrics", "show", "--json", cwd=pipeline).stdout
    assert "runs/eval/metrics.json" in shown and "exact_match" in shown
    sh("dvc", "plots", "show", "-o", "plots_html", cwd=pipeline)
    html = (pipeline / "plots_html" / "index.html").read_text()
    assert "training loss" in html

    sh("git", "add", "-A", cwd=pipeline)
    sh("git", "commit", "-q", "-m", "smoke run", cwd=pipeline)
    sh(
        "dvc",
        "exp",
        "run",
        "-n",
        "two",
        "-S",
        "experiment=smoke",
        "-S",
        "train.max_steps=2",
        cwd=pipeline,
    )
    results = exp_results(pipeline)
    em = {
        name: r["metrics"]["runs/eval/metrics.json"]["after"]["exact_match"]
        for name, r in results.items()
        if "runs/eval/metrics.json" in r["metrics"]
    }
    assert "two" in em and len(em) >= 2, results
    assert results["two"]["metrics"]["runs/train/metrics.json"]["steps"] == 2


def test_the_demo_model_publishes_in_the_hugging_face_layout(smoke_run: Path) -> None:
    """The default pipeline ends in runs/publish/: the byte-tokenizer demo model as a Gemma 3
    folder that transformers runs to tunixrt's logits and greedy tokens (ids in, as its card
    says), a card whose figures are the run's, and lineage rows that are what dvc.lock says
    the stage read."""
    import yaml
    from hf_check import check_published, tunix_side

    from tunixrt.manifest.load import load_run_manifest
    from tunixrt.publish.check import card_differences, folder_differences
    from tunixrt.publish.config import PublishConfig
    from tunixrt.publish.stage import policy_model
    from tunixrt.rl.config import RLConfig

    root, folder = smoke_run, smoke_run / "runs/publish"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    card = (folder / "README.md").read_text()
    assert "No Hugging Face tokenizer can read this model" in card
    assert "Published policy: **sft**" in card
    assert card_differences(card, json.loads((root / "runs/eval/metrics.json").read_text())) == []
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    read = {
        d["path"]: d["md5"]
        for d in lock["publish"]["deps"]
        if d["path"].startswith(("runs", "data"))
    }
    for path, md5 in read.items():  # the card's lineage is what the stage read
        assert f"| `{path}` |" in card and f"`{md5}`" in card, path
    params = yaml.safe_load((root / "params.yaml").read_text())
    manifest = load_run_manifest(root)
    cfg, rl = PublishConfig(**params["publish"]), RLConfig(**params["rl"])
    model, tokenizer, mesh, policy, lora = policy_model(manifest, cfg, rl, root)
    assert (policy, lora) == ("sft", None)
    assert folder_differences(folder, manifest.model.family, model, lora, mesh) == []
    prompts = [json.loads(line)["prompt"] for line in (root / "data/export/test.jsonl").open()][:8]
    side = tunix_side(model, tokenizer, prompts)
    stats = check_published(folder, side, prompts, tokenizer=False)
    assert stats["tokens_compared"] > 0, stats


def test_html_report_renders_in_headless_chromium(smoke_run: Path, tmp_path: Path) -> None:
    """`tunixrt report` (after the experiment above): a self-contained page whose charts and
    tables Chromium renders without a console error, into a screenshot that is not blank."""
    staged = (smoke_run / "runs/report.html").read_text()
    assert "<svg" in staged and "Experiments" not in staged  # the stage's page: no exp table
    out = tmp_path / "report.html"
    tunixrt("report", "-o", str(out), cwd=smoke_run)
    page = out.read_text()
    for needle in ("Dataset", "Lineage", "training loss", "learning rate",
                   "Evaluation", "wrong first", "Experiments", "two", "<polyline"):  # fmt: skip
        assert needle in page, needle
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # offline

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100  # text and lines on the page, not a blank screen
    colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50
    shutil.copy2(shot, smoke_run.parent / "report.png")  # kept with the run, for a look
