#!/usr/bin/env python
"""Check that an l2dynamics HTML report is self-contained and loads in a real browser.

Usage::

    python scripts/check_report.py PATH.html [--screenshot OUT.png] [--chromium BIN]

1. Static: the file parses, has a <title>, every <img> is an inline ``data:image/png;base64``
   URI that decodes to a PNG, and nothing refers to an external resource (``src``/``href``
   to http(s):, ``//host`` or ``file:``, CSS ``url(http…)``/``@import``, scripts).
2. Headless Chromium (``--dump-dom``): the page loads, and the DOM it built has the same title
   and the same inline images.
3. With ``--screenshot``: Chromium renders the page at 1200×3000 into OUT.png.

Exits 0 when every check passes; otherwise prints what failed and exits 1 (2 when Chromium
cannot be found or started).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_PNG = "data:image/png;base64,"
EXTERNAL = re.compile(r"^\s*(https?:|ftp:|file:|//)", re.IGNORECASE)
CSS_EXTERNAL = re.compile(r"url\(\s*['\"]?\s*(https?:|//)|@import", re.IGNORECASE)
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "background"}
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class CheckError(Exception):
    """A check failed; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class PageParser(HTMLParser):
    """Collects the title, the <img> sources, scripts, and external references of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.images: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self._in_title = self._in_style = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        self.scripts += tag == "script"
        self._in_title |= tag == "title"
        self._in_style |= tag == "style"
        for name, value in attrs:
            if value and (name in URL_ATTRIBUTES and EXTERNAL.match(value)):
                self.external.append(f"<{tag} {name}={value[:80]!r}>")
            if value and name == "style" and CSS_EXTERNAL.search(value):
                self.external.append(f"<{tag} style=...> loads {value[:80]!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = "".join(self._title_parts).strip()
        self._in_style &= tag != "style"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        if self._in_style and CSS_EXTERNAL.search(data):
            self.external.append(f"<style> loads {CSS_EXTERNAL.search(data).group(0)!r}")


def parse(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


def static_problems(page: PageParser) -> list[str]:
    """What makes a parsed report not self-contained (an empty list when it is)."""
    problems = [f"external resource: {ref}" for ref in page.external]
    if not page.title:
        problems.append("no <title>")
    if page.scripts:
        problems.append(f"{page.scripts} <script> element(s): a report needs no script")
    for i, src in enumerate(page.images):
        problem = _image_problem(src)
        if problem:
            problems.append(f"<img> #{i + 1}: {problem}")
    return problems


def _image_problem(src: str) -> str | None:
    if not src.startswith(DATA_PNG):
        return f"src is not an inline PNG data URI ({src[:60]!r})"
    try:
        data = base64.b64decode(src[len(DATA_PNG) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        return f"bad base64 ({exc})"
    return None if data.startswith(PNG_SIGNATURE) else "data URI is not a PNG"


def find_chromium(given: str | None) -> str:
    for candidate in (given,) if given else CANDIDATES:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    raise CheckError(
        f"Chromium not found (tried {given or ', '.join(CANDIDATES)}); install it "
        "(Debian: apt-get install chromium) or pass --chromium BIN",
        code=2,
    )


def run_chromium(binary: str, args: list[str], timeout: float) -> str:
    """Run headless Chromium with a throw-away profile; return its stdout."""
    with tempfile.TemporaryDirectory(prefix="check-report-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the browser's own process group only
            proc.communicate()
            raise CheckError(f"Chromium did not finish within {timeout:g} s", code=2) from None
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-5:])
        raise CheckError(f"Chromium exited with {proc.returncode}:\n{tail}", code=2)
    return out


def check_dom(binary: str, url: str, expected: PageParser, timeout: float) -> None:
    """Load the page with --dump-dom; its DOM must keep the title and the inline images."""
    dom = parse(run_chromium(binary, ["--dump-dom", url], timeout))
    if dom.title != expected.title:
        raise CheckError(f"loaded page title {dom.title!r} != file title {expected.title!r}")
    if len(dom.images) != len(expected.images):
        raise CheckError(f"loaded page has {len(dom.images)} <img>, file {len(expected.images)}")
    bad = [i + 1 for i, src in enumerate(dom.images) if not src.startswith(DATA_PNG)]
    if bad:
        raise CheckError(f"loaded page: <img> {bad} lost their data: URIs")


def check_screenshot(binary: str, url: str, out: Path, timeout: float) -> None:
    out = out.resolve()
    out.unlink(missing_ok=True)
    args = [f"--screenshot={out}", "--window-size=1200,3000", url]
    run_chromium(binary, args, timeout)
    if not out.is_file() or not out.read_bytes().startswith(PNG_SIGNATURE):
        raise CheckError(f"Chromium wrote no PNG screenshot at {out}")


def check(path: Path, screenshot: Path | None, chromium: str | None, timeout: float) -> str:
    """Run every check on ``path``; return a one-line success message or raise CheckError."""
    if not path.is_file():
        raise CheckError(f"{path}: no such file")
    page = parse(path.read_text(encoding="utf-8"))
    problems = static_problems(page)
    if problems:
        raise CheckError(f"{path} is not self-contained:\n  " + "\n  ".join(problems))
    binary = find_chromium(chromium)
    url = path.resolve().as_uri()
    check_dom(binary, url, page, timeout)
    if screenshot is not None:
        check_screenshot(binary, url, screenshot, timeout)
    shot = f", screenshot {screenshot}" if screenshot else ""
    return f"ok: {path} loads in Chromium: title {page.title!r}, {len(page.images)} figures{shot}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML report")
    parser.add_argument("--screenshot", type=Path, help="also render the page into this PNG")
    parser.add_argument("--chromium", help="the Chromium binary (default: /usr/bin/chromium)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per browser run")
    args = parser.parse_args(argv)
    try:
        print(check(args.report, args.screenshot, args.chromium, args.timeout))
    except CheckError as exc:
        print(f"check_report: FAILED: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
