"""The report in a real browser (headless Chromium): it loads without errors, every plot
decodes and is visible in a screenshot, and it prints to PDF. Skipped only where no
Chromium is installed (``.ci/install-chromium.sh`` installs Debian's)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from simulator.reports import FIGURE_IDS, build_report, write_report
from simulator.reports.browser import dump_dom, find_chromium, print_to_pdf, screenshot

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no chromium binary installed")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    report = build_report(
        ROOT / "workloads" / "plan_chat.yaml", ["workload.num_requests=300"], replications=1
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(report, path)
    return path


@pytest.fixture(scope="module")
def loaded(report_file):
    dom, log = dump_dom(report_file)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body))
    return dom, log, attrs


def test_page_loads_and_every_image_decodes(loaded):
    dom, log, attrs = loaded
    assert "Capacity plan" in dom
    assert int(attrs["data-images-total"]) == len(FIGURE_IDS)
    assert int(attrs["data-images-loaded"]) == len(FIGURE_IDS)
    # the page's own console stayed quiet: no script errors, no failed loads
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "ERR_FILE_NOT_FOUND" not in log


def test_plots_are_visible_in_a_screenshot(loaded, report_file, tmp_path):
    from PIL import Image

    _, _, attrs = loaded
    boxes = json.loads(attrs["data-image-boxes"].replace("&quot;", '"'))
    height = min(16000, int(attrs["data-page-height"]) + 50)
    shot = screenshot(report_file, tmp_path / "page.png", width=1200, height=height)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[0] >= max(top + h for _, _, top, _, h in boxes)
    for image_id, left, top, width, h in boxes:
        assert width > 300 and h > 150, image_id
        region = pixels[top : top + h, left : left + width]
        not_white = (region.sum(axis=2) < 600).mean()
        colours = len(
            {tuple(p) for p in region[:: max(1, h // 40), :: max(1, width // 40)].reshape(-1, 3)}
        )
        assert not_white > 0.02, f"{image_id}: only {not_white:.1%} of its pixels are drawn"
        assert colours > 5, f"{image_id}: {colours} colours"
    # between the plots the page is mostly white paper: the check can fail
    gap = pixels[: boxes[0][2] - 10, :]
    assert (gap.sum(axis=2) >= 600).mean() > 0.5


def test_prints_to_pdf(report_file, tmp_path):
    pdf = print_to_pdf(report_file, tmp_path / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(data) > 100_000  # six embedded plots
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 3


def test_cli_writes_the_pdf(tmp_path, capsys):
    import argparse

    from simulator.cli import report as report_command

    parser = argparse.ArgumentParser(prog="servesim")
    report_command.register(parser.add_subparsers())
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    args = parser.parse_args(
        [
            "report",
            str(ROOT / "workloads" / "quickstart.yaml"),
            "-o",
            str(html),
            "--pdf",
            str(pdf),
            "--replications",
            "1",
            "--set",
            "workload.num_requests=200",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"wrote {pdf}" in out and "recommendation:" in out
    assert pdf.read_bytes().startswith(b"%PDF")
