"""The HTML report: one self-contained file (figures inline, nothing external), escaped,
numbers formatted, written atomically; and scripts/check_report.py in headless Chromium."""

import base64
import importlib.util
import math
import re
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2dynamics.analysis.report import format_value, write_report

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_report.py"
CHROMIUM = Path("/usr/bin/chromium")


def tiny_png(path, rgb=(200, 30, 30), size=4):
    """A valid ``size``×``size`` one-colour PNG written by hand (no matplotlib needed)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * size
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


class Collect(HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    parser = Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture
def report(tmp_path):
    figs = [
        ("t* vs η·λ <b>raw</b>", tiny_png(tmp_path / "a.png")),
        ("best accuracy & λ", tiny_png(tmp_path / "b.png", (0, 90, 200))),
    ]
    table = pd.DataFrame(
        {
            "hash": ["<script>alert(1)</script>", "ok"],
            "lam": [1e-5, 0.0],
            "best_test_acc": [0.87654321, np.nan],
            "t_star_epochs": [90743.94, 12.0],
            "reached_train_acc_1": [True, False],
        }
    )
    path = write_report(
        tmp_path / "out" / "report.html",
        title="Figure 2 <FC> & co",
        summary={"slope": -1.0234567, "slope_ci": (-1.05, -0.97), "<k>": "<v>", "c": None},
        figures=figs,
        tables={"runs & more": table, "empty": table.iloc[:0]},
        notes=["2 runs never reached training accuracy 1 <i>sic</i>"],
    )
    return path, figs


def test_every_figure_is_embedded_as_its_own_png(report):
    path, figs = report
    images = [attrs["src"] for tag, attrs in parse(path).tags if tag == "img"]
    assert len(images) == len(figs)
    for src, (_, png) in zip(images, figs, strict=True):
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]) == png.read_bytes()
    text = "".join(parse(path).text)
    assert "t* vs η·λ <b>raw</b>" in text and "best accuracy & λ" in text  # captions, as text


def test_nothing_external_and_no_script(report):
    path, _ = report
    html = path.read_text(encoding="utf-8")
    for bad in ('src="http', "src='http", 'href="http', "href='http", "url(http", "@import"):
        assert bad not in html
    tags = parse(path).tags
    assert not [t for t, a in tags if t in ("script", "link", "iframe")]
    assert all(not a.get("src", "data:").startswith(("http", "//")) for _, a in tags)
    assert ("meta", {"charset": "utf-8"}) in tags


def test_data_is_escaped(report):
    path, _ = report
    html = path.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<FC>" not in html and "Figure 2 &lt;FC&gt; &amp; co" in html
    assert "<k>" not in html and "<v>" not in html and "<i>sic</i>" not in html
    assert "&lt;i&gt;sic&lt;/i&gt;" in html
    text = "".join(parse(path).text)  # what a reader sees
    assert "<script>alert(1)</script>" in text and "runs & more" in text


def test_title_date_summary_tables_and_notes_are_shown(report):
    path, _ = report
    text = " ".join(parse(path).text)
    assert re.search(r"<title>Figure 2 &lt;FC&gt; &amp; co</title>", path.read_text())
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", text)
    cells = [t.strip() for t in parse(path).text if t.strip()]
    slope = "-1.023 (95% interval [-1.05, -0.97])"  # an interval beside its value
    for expected in (slope, "—", "0.8765", "90744", "1e-05", "yes", "no"):
        assert expected in cells, expected
    assert "(no rows)" in text and "never reached training accuracy 1" in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.123456, "0.1235"),
        (3, "3"),
        (np.int64(7), "7"),
        (np.float32(0.5), "0.5"),
        (12.0, "12"),
        (90743.94, "90744"),
        (-1e-5, "-1e-05"),
        (2e16, "2e+16"),
        (math.nan, "—"),
        (math.inf, "inf"),
        (None, "—"),
        (pd.NA, "—"),
        (True, "yes"),
        (np.bool_(False), "no"),
        ((-1.0234, -0.97), "[-1.023, -0.97]"),
        ({"1e-05": 0.91234, "0": 0.5}, "1e-05: 0.9123, 0: 0.5"),
        ("path/x.png", "path/x.png"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_missing_figure_is_reported_in_the_page(tmp_path):
    path = write_report(
        tmp_path / "r.html",
        title="t",
        summary={},
        figures=[("gone", tmp_path / "no.png")],
        tables={},
    )
    html = path.read_text()
    assert "figure file missing" in html and "<img" not in html


def test_written_atomically(tmp_path):
    path = tmp_path / "r.html"
    write_report(path, title="first", summary={}, figures=[], tables={})
    write_report(path, title="second", summary={}, figures=[], tables={})
    assert "second" in path.read_text()
    with pytest.raises(AttributeError):
        write_report(path, title="third", summary={}, figures=[], tables={"bad": object()})
    assert "second" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def load_script():
    spec = importlib.util.spec_from_file_location("check_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ('<img src="https://example.com/a.png">', "external resource"),
        ('<link rel="stylesheet" href="//cdn.example.com/x.css">', "external resource"),
        ("<style>body { background: url(http://x/y.png) }</style>", "external resource"),
        ("<script>1</script>", "<script>"),
        ('<img src="data:image/png;base64,aGVsbG8=">', "not a PNG"),
        ('<img src="a.png">', "not an inline PNG"),
    ],
)
def test_check_report_rejects_reports_that_are_not_self_contained(tmp_path, capsys, html, problem):
    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><head><title>x</title></head><body>{html}</body></html>")
    assert load_script().main([str(page), "--chromium", "/nonexistent/chromium"]) == 1
    assert problem in capsys.readouterr().err


def test_check_report_accepts_the_static_report_and_needs_a_browser(report, capsys):
    path, _ = report
    assert load_script().main([str(path), "--chromium", "/nonexistent/chromium"]) == 2
    assert "Chromium not found" in capsys.readouterr().err


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_report_loads_in_headless_chromium(report, tmp_path):
    path, figs = report
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(path), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{len(figs)} figures" in proc.stdout
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
