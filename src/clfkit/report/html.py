"""``report.html``: one self-contained file to hand over — the report folder's numbers and figures in a page
that opens from disk and loads nothing from the network.  No torch import.

:func:`render_report` is pure (metrics, figure bytes, facts → HTML text); :func:`write_report_html` reads what
a report folder holds (``metrics.json`` or ``summary.json``, the PNG figures, ``label_issues.csv``) and writes
``report.html`` beside them.  Images are inlined as ``data:`` URIs; the style sheet is inline; there is no
script.  Every section is always present (:data:`SECTIONS`), saying so when this run has nothing for it, so a
reader finds the same page for every model.
"""
from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from clfkit.io import atomic_path
from clfkit.report.intervals import format_interval

__all__ = ["SECTIONS", "render_report", "write_report_html", "model_facts", "MAX_EXAMPLES", "MAX_SUSPECTS"]

# (id, heading) in page order: the page's table of contents and what the browser test looks for.
SECTIONS = (
    ("summary", "Summary"),
    ("per-class", "Per class"),
    ("confusion", "Confusion matrix"),
    ("calibration", "Calibration"),
    ("coverage", "Accuracy against coverage"),
    ("examples", "Example predictions"),
    ("mistakes", "Mistakes"),
    ("label-audit", "Label audit"),
    ("model-card", "Model card"),
)
MAX_EXAMPLES = 12  # single-image panels shown
MAX_SUSPECTS = 20  # label-audit rows shown

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:72rem;
padding:1rem 2rem;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2rem}nav a{margin-right:.8rem}section{margin:2rem 0;border-top:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;
text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;height:auto}
.figs{display:flex;flex-wrap:wrap;gap:1rem}.figs img{max-width:32rem}.note{color:#666}
.big{font-size:1.6rem;font-weight:600}table.facts td{text-align:left}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"


def _ci(value: Any) -> str:
    return f" {format_interval(value, percent=True)}" if value else ""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _none(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _summary(metrics: Mapping[str, Any], labelled: bool) -> str:
    if not labelled:
        counts = metrics.get("predicted_counts") or metrics.get("predictions_per_class") or {}
        rows = [[name, count] for name, count in counts.items()]
        text = _none("The input was not a labelled folder: no accuracy. Predictions per class:")
        return text + (_table(["class", "predictions"], rows) if rows else "")
    lines = [f'<p class="big">accuracy {_pct(metrics.get("accuracy"))}{_ci(metrics.get("accuracy_ci95"))}</p>']
    rows = []
    for label, key in (("accuracy", "accuracy"), ("accuracy without TTA", "accuracy_no_tta"),
                       ("macro F1", "macro_f1"), ("balanced accuracy", "balanced_accuracy"),
                       ("top-5 accuracy", "top5_accuracy")):
        if metrics.get(key) is not None:
            rows.append([label, _pct(metrics[key]) + _ci(metrics.get(f"{key}_ci95"))])
    if metrics.get("num_samples") is not None:
        rows.append(["images", metrics["num_samples"]])
    if metrics.get("rejected") is not None:
        rows.append([f"below {metrics.get('reject_below')}: unknown", metrics["rejected"]])
    lines.append(_table(["", "value [95 % interval]"], rows))
    lines.append(_none("Intervals: Wilson for accuracy and recall, a seeded bootstrap over images for F1."))
    return "".join(lines)


def _per_class(metrics: Mapping[str, Any], train_counts: Mapping[str, int]) -> str:
    per = metrics.get("per_class") or {}
    if not per:
        return _none("No per-class numbers: the input was not labelled.")
    names = list(metrics.get("class_names") or per)
    rows = []
    for name in names:
        pc = per.get(name, {})
        counts = [train_counts.get(name, "–")] if train_counts else []  # an ONNX file does not know them
        rows.append([name, *counts, pc.get("support", "–"), _pct(pc.get("precision")),
                     _pct(pc.get("recall")) + _ci(pc.get("recall_ci95")), _pct(pc.get("f1"))])
    headers = ["class", *(["train images"] if train_counts else []), "images", "precision", "recall [95 %]", "F1"]
    return _table(headers, rows)


def _figure_or(images: Mapping[str, bytes], names: Sequence[str], missing: str) -> str:
    found = [_img(images[n], n) for n in names if n in images]
    return f'<div class="figs">{"".join(found)}</div>' if found else _none(missing)


def _calibration(metrics: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    parts = []
    if metrics.get("ece") is not None:
        rows = [["expected calibration error (15 bins)", f"{float(metrics['ece']):.4f}"]]
        if metrics.get("ece_uncalibrated") is not None:
            rows.insert(0, ["ECE before calibration", f"{float(metrics['ece_uncalibrated']):.4f}"])
        if metrics.get("temperature") is not None:
            rows.append(["temperature", f"{float(metrics['temperature']):.3f}"])
        parts.append(_table(["", ""], rows))
    parts.append(_figure_or(images, ["reliability.png"], "No calibration figure in this report."))
    return "".join(parts)


def _coverage(metrics: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    parts = []
    rows = []
    for target in ("95", "99"):
        found = metrics.get(f"reject_below_for_{target}")
        if isinstance(found, Mapping):
            rows.append([f"{target} % accuracy", f"{float(found.get('threshold', 0)):.3f}",
                         _pct(found.get("coverage")), _pct(found.get("accuracy"))])
        elif f"reject_below_for_{target}" in metrics:
            rows.append([f"{target} % accuracy", "not reachable", "–", "–"])
    if rows:
        parts.append(_table(["keep", "--reject-below", "coverage", "accuracy kept"], rows))
    parts.append(_figure_or(images, ["coverage.png"], "No accuracy-against-coverage figure in this report."))
    return "".join(parts)


def _suspects(rows: Sequence[Mapping[str, str]], images: Mapping[str, bytes]) -> str:
    if not rows and "label_issues.png" not in images:
        return _none("No label audit in this report (clf-train writes one for its run: report/label_issues.csv).")
    parts = []
    if rows:
        columns = [c for c in ("rank", "path", "given_label", "suggested_label", "given_prob", "margin")
                   if c in rows[0]] or list(rows[0])
        parts.append(_table(columns, [[r.get(c, "") for c in columns] for r in rows[:MAX_SUSPECTS]]))
    parts.append(_figure_or(images, ["label_issues.png"], ""))
    return "".join(parts)


def _model_card(facts: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    rows = [[key, value] for key, value in facts.items() if value not in (None, "")]
    names = metrics.get("class_names")
    if names and "classes" not in facts:
        rows.append(["classes", ", ".join(names)])
    return _table(["", ""], rows, css="facts") if rows else _none("No model facts were given.")


def render_report(metrics: Mapping[str, Any], images: Mapping[str, bytes], *, title: str,
                  facts: Mapping[str, Any] | None = None, train_counts: Mapping[str, int] | None = None,
                  suspects: Sequence[Mapping[str, str]] = ()) -> str:
    """The page.  ``images`` maps report-relative PNG names (``confusion_matrix.png``, ``panels/x.png``, …) to
    their bytes; ``facts`` are the model card's rows (backbone, input size, runtime, speed, …)."""
    facts = dict(facts or {})
    labelled = "accuracy" in metrics
    counts = dict(train_counts or metrics.get("train_counts") or {})
    panels = sorted(n for n in images if n.startswith("panels/"))[:MAX_EXAMPLES]
    grids = sorted(n for n in images if n.startswith("grids/"))
    examples = [_img(images[n], n) for n in panels + grids]
    bodies = {
        "summary": _summary(metrics, labelled),
        "per-class": _per_class(metrics, counts),
        "confusion": _figure_or(images, ["confusion_matrix.png", "per_class.png"],
                                "No confusion matrix: the input was not labelled."),
        "calibration": _calibration(metrics, images),
        "coverage": _coverage(metrics, images),
        "examples": (f'<div class="figs">{"".join(examples)}</div>' if examples
                     else _none("No example panels (clf-infer --report DIR --visualize N draws them).")),
        "mistakes": _figure_or(images, ["misclassified.png"],
                               "No mistakes figure (a labelled run with --visualize N draws it)."),
        "label-audit": _suspects(suspects, images),
        "model-card": _model_card(facts, metrics),
    }
    nav = "".join(f'<a href="#{sid}">{_e(head)}</a>' for sid, head in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{_e(head)}</h2>{bodies[sid]}</section>' for sid, head in SECTIONS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1><nav>{nav}</nav>{sections}</body></html>\n")


def model_facts(spec: Any, input_format: str | None = None) -> dict[str, str]:
    """The model card rows every report shares, from the ModelSpec: backbone, input and classes."""
    crop = f"{spec.input_size} px crop of a {spec.resize_size} px resize ({spec.interpolation})"
    return {"backbone": spec.backbone or "–", "input": crop + (f", {input_format}" if input_format else ""),
            "classes": f"{spec.num_classes}: {', '.join(spec.class_names)}"}


def _read_suspects(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [row for _, row in zip(range(MAX_SUSPECTS), csv.DictReader(fh))]


def write_report_html(report_dir: str | Path, *, title: str, facts: Mapping[str, Any] | None = None,
                      train_counts: Mapping[str, int] | None = None) -> Path:
    """Write ``report_dir/report.html`` from what the folder holds; returns its path."""
    folder = Path(report_dir)
    metrics: dict[str, Any] = {}
    for name in ("metrics.json", "summary.json"):
        if (folder / name).is_file():
            metrics = json.loads((folder / name).read_text(encoding="utf-8"))
            break
    images = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}
    page = render_report(metrics, images, title=title, facts=facts, train_counts=train_counts,
                         suspects=_read_suspects(folder / "label_issues.csv"))
    out = folder / "report.html"
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out
