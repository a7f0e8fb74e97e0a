"""The committed reports as a reader meets them: every local link and image resolves, no machine path shows."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import REPO

PAGES = sorted((REPO / "reports").glob("*/*.html"))
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|tmp)/")


class Page(HTMLParser):
    """The links (href), images (src) and element ids of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.ids.update(value for key, value in attrs if key in ("id", "name") and value)
        for key in ("href", "src"):
            if values.get(key):
                self.targets.append(values[key])


def broken_targets(page: Path) -> list[str]:
    """The targets of `page` that name no file beside it, or no element of it (`#anchor`)."""
    parsed = Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    broken = []
    for target in parsed.targets:
        parts = urlsplit(target)
        if parts.scheme in ("http", "https", "data", "mailto"):
            continue
        if parts.scheme or parts.netloc:
            broken.append(f"{target} (not a local link)")
        elif parts.path and not (page.parent / unquote(parts.path)).exists():
            broken.append(target)
        elif not parts.path and parts.fragment and not {parts.fragment, unquote(parts.fragment)} & parsed.ids:
            broken.append(target)
    return broken


def test_there_are_reports_to_check() -> None:
    assert any(page.name == "index.html" for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(REPO)) for page in PAGES])
def test_every_local_link_and_image_resolves(page: Path) -> None:
    assert broken_targets(page) == []


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(REPO)) for page in PAGES])
def test_no_machine_path_shows(page: Path) -> None:
    found = MACHINE_PATH.findall(page.read_text(encoding="utf-8"))
    assert found == [], f"{page.name} names machine paths"


def test_the_checks_find_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "there.png").write_bytes(b"")
    page = tmp_path / "page.html"
    page.write_text(
        "<h2 id='top'>x</h2><a href='#top'>ok</a><a href='#gone'>no</a><img src='there.png'>"
        "<img src='missing.png'><a href='https://example.org'>web</a><img src='data:image/png;base64,AA=='>"
        "<a href='file:///etc/passwd'>file</a><p>/home/someone/run</p>",
        encoding="utf-8",
    )
    assert broken_targets(page) == ["#gone", "missing.png", "file:///etc/passwd (not a local link)"]
    assert MACHINE_PATH.findall(page.read_text()) == ["/home/"]
