"""runs/report.html: one self-contained page per run (no script, no network, no server).

Dataset key and stats (with what selection took out, decontamination and the mixture), the
training examples' token lengths against max_seq_length, the lineage chain (params -> dataset
hash -> export hashes -> checkpoint), the loss and learning-rate curves,
exact match before/after by category and by eval set, sample predictions (wrong ones first), the
published model (runs/publish/, as the publish stage wrote it) and, from `tunixrt report`, the
experiments side by side.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import orjson

from tunixrt.jsonio import iter_lines
from tunixrt.paths import PREDICTIONS, PUBLISH_DIR, TRAIN_DIR
from tunixrt.publish.config import POLICIES
from tunixrt.report.charts import histogram_chart, line_chart
from tunixrt.report.markdown import (
    CARD_LINK,
    CONTAMINATION_ACTIONS,
    NOT_PUBLISHED,
    TUNED_LABELS,
    WEIGHTS,
    duplicate_prompts,
    load_outputs,
    load_published,
    tuned_text,
)

LIVE_TRAIN = TRAIN_DIR / "live" / "plots" / "metrics" / "train"
SAMPLES_PER_SET = 10
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right}
code,pre{font:12px ui-monospace,monospace}pre{margin:0;white-space:pre-wrap;max-width:420px}
.ok{color:#1a7f37}.bad{color:#cf222e}.charts{display:flex;flex-wrap:wrap;gap:16px}
svg .axis{stroke:#444}svg .grid{stroke:#eee}svg .tick{font-size:11px;fill:#555}
svg .title{font-size:13px;font-weight:600}svg .legend{font-size:12px}
.chain{display:flex;flex-wrap:wrap;gap:6px;align-items:stretch}
.chain div{border:1px solid #ccc;border-radius:6px;padding:6px 10px;background:#fafafa}
.chain span.arrow{align-self:center;font-size:18px;color:#888}
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["<table><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            cells.append(f'<td class="num">{v}</td>' if num else f"<td>{v}</td>")
        out += ["<tr>", *cells, "</tr>"]
    return "".join(out) + "</table>"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _series(path: Path, column: str) -> list[tuple[float, float]]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return [(float(r["step"]), float(r[column])) for r in csv.DictReader(fh, delimiter="\t")]


def _predictions(root: Path) -> list[dict[str, Any]]:
    path = root / PREDICTIONS
    if not path.is_file():
        return []
    rows = [orjson.loads(line) for _, line in iter_lines(path) if line]
    after = sorted(
        (r for r in rows if r["model"] == "after"), key=lambda r: (r["set"], r["correct"], r["id"])
    )  # per eval set, the wrong ones first
    shown: dict[str, int] = {}
    out = []
    for r in after:
        if shown.get(r["set"], 0) < SAMPLES_PER_SET:
            shown[r["set"]] = shown.get(r["set"], 0) + 1
            out.append(r)
    return out


def _min_avg_max(m: Mapping[str, Any], digits: int) -> str:
    if m.get("avg") is None:  # an empty split
        return "-"
    return f"{m['min']} / {m['avg']:.{digits}f} / {m['max']}"


def _dataset(ds: Mapping[str, Any]) -> str:
    c = ds["counts"]
    head = f"<p>Dataset <code>{escape(ds['dataset_key'])}</code>: {c['total']} traces.</p>"
    rows = []
    for split in ("train", "val", "test"):
        s = ds["stats"][split]
        cats = ", ".join(f"{escape(k)} {v}" for k, v in sorted(s.get("by_category", {}).items()))
        rows.append(
            (split, c[split], _min_avg_max(s["steps"], 1), _min_avg_max(s["chars"], 0), cats)
        )
    head_cols = ("split", "traces", "steps min/avg/max", "chars min/avg/max", "by category")
    return head + _table(head_cols, rows) + _selection(ds) + _mixture(ds)


def _selection(ds: Mapping[str, Any]) -> str:
    """What the dataset stage took out of the traces, step by step, and the decontamination."""
    sel = ds.get("selection")
    if not sel:
        return ""
    rows: list[tuple[str, int]] = [("read from <code>data/traces/traces.jsonl</code>", sel["read"])]
    rows += [
        (f"filtered out (<code>{escape(reason)}</code>)", n)
        for reason, n in sorted(sel.get("filtered", {}).items())
    ]
    rows.append(("duplicate prompts (the first trace of a prompt kept)", duplicate_prompts(sel)))
    if "near_duplicate_texts" in sel:
        rows.append(("near-duplicate texts (one kept per cluster)", sel["near_duplicate_texts"]))
    if sel.get("limited"):
        rows.append(("left out by <code>dataset.limit</code>", sel["limited"]))
    if sel.get("in_test_by_source"):
        rows.append(("sent to test by <code>dataset.test_sources</code>", sel["in_test_by_source"]))
    out = ["<p>Selection:</p>", _table(("step", "traces"), rows)]
    d = sel.get("decontamination")
    if d and d["action"] == "off":
        out.append(
            "<p>Decontamination: off (<code>dataset.decontaminate</code>); the training split "
            "was not checked against the eval sets.</p>"
        )
    elif d:
        n = d["matched"]
        out.append(
            f"<p>Decontamination (<code>dataset.decontaminate</code> {escape(d['action'])}): "
            f"<b>{n}</b> training {'record shares' if n == 1 else 'records share'} a run of "
            f"{d['ngram']} words (of a shorter prompt: all of it) with one of {d['eval_items']} "
            "eval items (the prompts of <code>eval.sets</code> and of the test split), "
            f"{CONTAMINATION_ACTIONS.get(d['action'], escape(d['action']))}.</p>"
        )
        if d["by_eval_set"]:
            matched = sorted(d["by_eval_set"].items())
            head = ("eval set", "training records matched")
            out.append(_table(head, [(escape(k), v) for k, v in matched]))
    removed = sel.get("removed_file")
    if removed and removed.get("records"):
        out.append(
            "<p>Near-duplicates and contaminated records, each with why and what it matched: "
            f"<code>{escape(removed['path'])}</code> ({removed['records']}).</p>"
        )
    return "".join(out)


def _mixture(ds: Mapping[str, Any]) -> str:
    """The training split's mixture (dataset.mix): each source's weight and what it gave."""
    mix = ds.get("mixture")
    if not mix:
        return ""
    rows = [
        (
            escape(name),
            m["weight"],
            _pct(m["share"]),
            m["available"],
            m["train"],
            m["repeated"],
            m["left_out"],
        )
        for name, m in sorted(mix["sources"].items())
    ]
    head = ("source", "weight", "share of train", "available", "train", "repeated", "left out")
    return (
        f"<p>Mixture of the training split (<code>dataset.mix</code>, policy "
        f"<code>{escape(mix['policy'])}</code>):</p>" + _table(head, rows)
    )


def _lengths(rm: Mapping[str, Any]) -> str:
    """The training examples' token lengths against train.max_seq_length (the manifest stage's
    measure), as a histogram with the cut."""
    s, t = rm.get("lengths"), rm["training"]
    if not s:
        return (
            "<p>Not measured by the manifest stage (the tokenizer did not load there); the "
            "train stage checked them before training: see its log.</p>"
        )
    msl, n = s["max_seq_length"], s["examples"]
    counted = (
        f"counted with the {escape(s['tokenizer'])} tokenizer as training encodes them "
        "(<code>&lt;bos&gt;</code>, turn markers and <code>&lt;eos&gt;</code> included)"
    )
    if s["over"]:
        bound = t.get("max_truncated_share")
        policy = t.get("long_examples", "keep")
        if policy == "drop":
            fate = " and were left out (<code>train.long_examples</code> drop)"
        elif policy == "truncate_reasoning":
            dropped = (
                f", {s['dropped']} dropped (not even the final answer without reasoning fits)"
                if s["dropped"]
                else ""
            )
            fate = (
                f": {s['over'] - s['dropped']} were trained on with their last reasoning steps "
                f"cut (<code>train.long_examples</code> truncate_reasoning){dropped}"
            )
        else:
            dropped = (
                f", {s['dropped']} dropped (the prompt alone fills it)" if s["dropped"] else ""
            )
            fate = f" and were truncated{dropped}"
        text = (
            f"<p>{s['over']} of {n} training examples (<b>{_pct(s['share'])}</b>) are longer "
            f"than <code>train.max_seq_length</code> {msl} tokens{fate}; "
            f"median {s['median']}, p95 {s['p95']}, longest {s['max']} tokens, {counted}. "
            f"The bound <code>train.max_truncated_share</code> is {bound}.</p>"
        )
    else:
        text = (
            f"<p>All {n} training examples fit in <code>train.max_seq_length</code> {msl} "
            f"tokens: median {s['median']}, p95 {s['p95']}, longest {s['max']}, {counted}.</p>"
        )
    chart = histogram_chart(
        s["histogram"],
        bin_width=s["bin_width"],
        title="training examples by length",
        x_label="tokens per example, before truncation",
        marker=msl,
        marker_label=f"max_seq_length {msl}",
    )
    return f'{text}<div class="charts">{chart}</div>'


def _lineage(rm: Mapping[str, Any], tm: Mapping[str, Any]) -> str:
    t, m, d = rm["training"], rm["model"], rm["dataset"]
    w = rm.get("weights") or {}
    start = (
        f"weights <code>{w['checkpoint_digest'][:16]}</code> ({w['checkpoint_files']} files)"
        if w.get("checkpoint_digest")
        else "random init"
    )
    if w.get("tokenizer_sha256"):
        start += f"<br>tokenizer <code>{w['tokenizer_sha256'][:16]}</code>"
    boxes = [
        f"<b>params</b><br>model <code>{escape(m['model_id'])}</code> ({escape(m['family'])} "
        f"{escape(m['preset'])})<br>lr {t['learning_rate']}, batch {t['batch_size']}, "
        f"seq {t['max_seq_length']}, seed {rm['seed']}<br>{start}",
        f"<b>dataset</b><br><code>{escape(d['dataset_key'])}</code><br>"
        f"content <code>{d['content_sha256'][:16]}</code>",
        "<b>exports</b> (<code>"
        + escape(d["format"])
        + "</code>)<br>"
        + "<br>".join(
            f"{escape(k)}: <code>{v['sha256'][:16]}</code> ({v['records']})"
            for k, v in sorted(d["splits"].items())
        ),
        f"<b>checkpoint</b><br>step {tm['checkpoint_step']} of <code>"
        f"{escape(rm['output']['output_dir'])}/checkpoints</code><br>loss "
        f"{tm['loss_first']:.4f} &rarr; {tm['loss_last']:.4f}",
    ]
    arrow = '<span class="arrow">&rarr;</span>'
    return '<div class="chain">' + arrow.join(f"<div>{b}</div>" for b in boxes) + "</div>"


def _evaluation(em: Mapping[str, Any]) -> str:
    b, a = em["before"], em["after"]
    models = [("before", b), ("after", a)] + [
        (f"after {label}", em[name]) for name, label in TUNED_LABELS.items() if name in em
    ]
    grpo = tuned_text(em, lambda x: f"<b>{_pct(x)}</b>")
    out = [
        f"<p>Exact match on {a['n']} held-out problems: before {_pct(b['exact_match'])}, "
        f"after <b>{_pct(a['exact_match'])}</b> (delta {100 * em['delta']:+.1f} points)"
        f"{grpo}.</p>"
    ]
    for key, label in (("by_category", "category"), ("by_set", "eval set")):
        names = sorted(set().union(*(m[key] for _, m in models)))
        rows = [
            (
                escape(n),
                a[key].get(n, {}).get("n", 0),
                *(_pct(m[key].get(n, {}).get("exact_match")) for _, m in models),
            )
            for n in names
        ]
        out.append(_table((label, "n", *(name for name, _ in models)), rows))
    return "".join(out)


def _samples(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>No predictions.</p>"
    body = [
        (
            '<span class="ok">right</span>' if r["correct"] else '<span class="bad">wrong</span>',
            escape(r["set"]),
            escape(r["category"]),
            f"<code>{escape(r['expected'])}</code>",
            f"<code>{escape(str(r['parsed']))}</code>",
            f"<pre>{escape(r['generated'][:400])}</pre>",
        )
        for r in rows
    ]
    return _table(("", "set", "category", "expected", "parsed", "generated (after)"), body)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _published(pub: Mapping[str, Any] | None, card_href: str) -> str:
    """The folder the publish stage wrote: which policy, which weights, the files, the card."""
    if pub is None:
        return (
            f"<p>Nothing published: <code>{PUBLISH_DIR.as_posix()}/</code> is absent "
            f"({NOT_PUBLISHED}).</p>"
        )
    weights = WEIGHTS[pub["weights"]]
    if pub["weights"] == "adapters" and pub["base_model"]:
        weights += f" <code>{escape(str(pub['base_model']))}</code>"
    license_ = (
        f"license <code>{escape(str(pub['license']))}</code>"
        if pub["license"]
        else "no license given (<code>publish.license</code>)"
    )
    text = (
        f"<p>The <b>{escape(pub['policy'])}</b> policy, {POLICIES[pub['policy']]}, in the "
        f"Hugging Face layout in <code>{escape(pub['folder'])}</code>: "
        f"<b>{escape(pub['weights'])}</b> weights ({weights}), {escape(pub['dtype'])}; "
        f'{license_}. Model card: <a href="{escape(card_href)}">{escape(pub["card"])}</a>.</p>'
    )
    rows = [(f"<code>{escape(name)}</code>", _size(size)) for name, size in pub["files"]]
    return text + _table(("file", "size"), rows)


def _experiments(exps: Sequence[Mapping[str, Any]]) -> str:
    if not exps:
        return "<p>No experiments yet: <code>dvc exp run -S key=value</code>, then again.</p>"
    keys = sorted({k for e in exps for k in e["params"]})
    varying = [k for k in keys if len({str(e["params"].get(k)) for e in exps}) > 1]
    head = ("experiment", *varying, "exact match after", "loss last")
    rows = [
        (
            escape(e["name"]),
            *(escape(str(e["params"].get(k, "-"))) for k in varying),
            _pct(e["exact_match"]),
            "-" if e["loss_last"] is None else e["loss_last"],
        )
        for e in exps
    ]
    return _table(head, rows)


def render_page(
    root: Path,
    experiments: Sequence[Mapping[str, Any]] | None = None,
    *,
    card_href: str = CARD_LINK,
) -> str:
    """The report page; `card_href`: the model card's address from where the page is written
    (runs/, by default)."""
    ds, rm, tm, em = load_outputs(root)
    loss = line_chart(
        {"train": _series(root / LIVE_TRAIN / "loss.tsv", "loss")},
        title="training loss (log scale)",
        x_label="step",
        log_y=True,
    )
    lr = line_chart(
        {"learning rate": _series(root / LIVE_TRAIN / "learning_rate.tsv", "learning_rate")},
        title="learning rate",
        x_label="step",
    )
    sections = [
        ("Dataset", _dataset(ds)),
        ("Sequence lengths", _lengths(rm)),
        ("Lineage", _lineage(rm, tm)),
        ("Training", f'<div class="charts">{loss}{lr}</div>'),
        ("Evaluation", _evaluation(em)),
        ("Sample predictions (per eval set, wrong first)", _samples(_predictions(root))),
        ("Published model", _published(load_published(root), card_href)),
    ]
    if experiments is not None:
        sections.append(("Experiments", _experiments(experiments)))
    body = "".join(f"<h2>{escape(t)}</h2>{html}" for t, html in sections)
    title = f"tunixrt run report: {rm['model']['model_id']} on {ds['dataset_key']}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}"
        "</body></html>\n"
    )
