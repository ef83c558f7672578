"""report.html: one self-contained page (figures inlined, no script, nothing from the network) with every
section, rendered in the real headless Chromium of tests/browser.py from a real clf-infer report folder."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from browser import chromium
from clfkit.cli.infer import infer_cmd
from clfkit.report.html import SECTIONS, render_report
from helpers import make_labelled_folder


def test_every_section_is_there_even_when_the_run_has_nothing_for_it():
    page = render_report({}, {}, title="empty <run>")
    for sid, heading in SECTIONS:
        assert f'<section id="{sid}"><h2>{heading}</h2>' in page
    assert "empty &lt;run&gt;" in page and "<script" not in page
    assert "not a labelled folder" in page


def test_numbers_intervals_and_figures_are_inlined():
    metrics = {"accuracy": 0.9, "accuracy_ci95": [0.8, 0.95], "macro_f1": 0.85, "num_samples": 40,
               "class_names": ["cat", "dog & co"], "ece": 0.031, "ece_uncalibrated": 0.12, "temperature": 1.7,
               "per_class": {"cat": {"precision": 1, "recall": 0.8, "f1": 0.89, "support": 20,
                                     "recall_ci95": [0.58, 0.92]},
                             "dog & co": {"precision": 0.83, "recall": 1, "f1": 0.91, "support": 20}}}
    png = b"\x89PNG\r\n\x1a\n fake bytes"
    page = render_report(metrics, {"confusion_matrix.png": png, "panels/a.png": png}, title="t",
                         train_counts={"cat": 12, "dog & co": 9}, facts={"backbone": "lite0"})
    assert "90.0 % [80.0, 95.0]" in page and "80.0 % [58.0, 92.0]" in page
    assert "dog &amp; co" in page and "0.1200" in page and "1.700" in page and ">12<" in page
    assert page.count("data:image/png;base64,") == 2 and "lite0" in page


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    """A real labelled clf-infer run with figures: what a user hands over."""
    root = tmp_path_factory.mktemp("html")
    photos = make_labelled_folder(root / "photos", {"cat": 6, "dog": 5, "owl": 4})
    result = CliRunner().invoke(infer_cmd, ["--model", str(tiny.onnx), str(photos), "--out", str(root / "p.csv"),
                                            "--report", str(root / "report"), "--visualize", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return root / "report"


def test_clf_infer_writes_the_page_beside_its_figures(report):
    page = (report / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((report / "metrics.json").read_text())
    for name in metrics["class_names"]:
        assert f">{name}<" in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # every image inline, every link inside the page
    assert page.count("data:image/png;base64,") >= 3  # confusion matrix, per class, panels


@pytest.mark.slow
def test_the_page_renders_in_a_browser_offline_with_every_section(report):
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((report / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert [s.get_attribute("id") for s in page.locator("section").all()] == [sid for sid, _ in SECTIONS]
        assert page.locator("#summary .big").inner_text().startswith("accuracy ")
        assert "Accuracy against coverage" in page.locator("#coverage h2").inner_text()
        broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0 and page.evaluate("document.images.length") >= 3
        assert not errors, errors
        assert all(u.startswith(("file:", "data:")) for u in requests), requests  # nothing from the network
        page.close()
