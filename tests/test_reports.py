"""Reports as a reader meets them: every local link and image resolves, no machine path shows (the committed
reports and the ci profile's, rendered in the session), and the index tells the study in the paper's order:
sections in order, every figure captioned and linked full size, the run's provenance."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import matplotlib
import pandas as pd
import pytest
from conftest import REPO

from kdlib.config import load_params
from kdlib.pipeline.graph import STAGES
from kdlib.pipeline.provenance import RUN_LOG, command_line, provenance
from kdlib.report import render as report
from kdlib.report.index import write_index
from kdlib.report.story import STORY

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


class IndexPage(HTMLParser):
    """An index page as a reader sees it: its sections in order, each with its text, its figures (link,
    image, title, caption) and aligned examples, and the provenance entries."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.text: dict[str, str] = {}
        self.figures: list[dict[str, str | None]] = []
        self.images: list[tuple[str | None, str | None]] = []  # (src, the href of the link around it)
        self.provenance: dict[str, str] = {}
        self.examples: list[tuple[str, str | None]] = []  # (section, the table's dir)
        self._section: str | None = None
        self._link: str | None = None
        self._field: str | None = None
        self._term = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self._section = values["id"]
            self.sections.append(values["id"])
        elif tag == "figure":
            self.figures.append({"section": self._section, "href": None, "src": None, "title": "", "caption": ""})
        elif tag == "a":
            self._link = values.get("href")
            if self.figures and self.figures[-1]["href"] is None:
                self.figures[-1]["href"] = self._link
        elif tag == "img":
            self.images.append((values.get("src"), self._link))
            if self.figures:
                self.figures[-1]["src"] = values.get("src")
        elif tag == "strong" and values.get("class") == "title" or tag == "span" and values.get("class") == "caption":
            self._field = "title" if tag == "strong" else "caption"
        elif tag in ("dt", "dd") and self._section == "provenance":  # the answer's rows are no provenance
            self._field = tag
            self._term = "" if tag == "dt" else self._term
        elif tag == "table" and values.get("dir"):
            self.examples.append((self._section, values.get("dir")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag == "a":
            self._link = None
        elif tag in ("strong", "span", "dt", "dd"):
            self._field = None

    def handle_data(self, data: str) -> None:
        if self._section:
            self.text[self._section] = self.text.get(self._section, "") + data
        if self._field in ("title", "caption"):
            self.figures[-1][self._field] += data
        elif self._field == "dt":
            self._term += data
        elif self._field == "dd":
            self.provenance[self._term] = self.provenance.get(self._term, "") + data


def read_index(reports: Path) -> IndexPage:
    page = IndexPage()
    page.feed((reports / "index.html").read_text(encoding="utf-8"))
    return page


def story_order(page: IndexPage) -> list[str]:
    return [section for section in page.sections if section in {s.key for s in STORY}]


def test_the_index_tells_the_study_in_order_with_captioned_figures_and_provenance(tmp_path: Path) -> None:
    params = load_params(REPO / "params" / "tiny.yaml", settings=[f"reports_dir={tmp_path}"])
    for name in ("corpora", "headline", "training_sets", "wer_normalized", "wer_authors"):
        report.write_table(pd.DataFrame({"model": ["teacher"], "value": [1.5]}), tmp_path, name)
    examples = pd.DataFrame(
        {"category": ["substitution"], "model": ["teacher"], "dataset": ["PAL"], "id": ["p1"]}
        | {"reference": ["شو بدك"], "hypothesis": ["ماذا تريد"]}
    )
    report.write_table(examples, tmp_path, "error_examples")
    placed = [name for section in STORY for name in section.figures if name != "published_parity"]
    for name in [*placed, "made_later"]:
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        report.save_figure(fig, tmp_path, name, title=f"Title of {name}", caption=f"What {name} shows.")
        plt.close(fig)
    for stage in STAGES:
        report.show_findings(tmp_path, stage.name, [f"{stage.name} found <this>."])
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "tiny.yaml").write_bytes((REPO / "params" / "tiny.yaml").read_bytes())
    record = provenance(tmp_path / "params" / "tiny.yaml", tmp_path, command_line("params/tiny.yaml", ["05"]))
    notebooks = {stage.name: {"status": "ok", "wall_s": 1.0} for stage in STAGES}
    (tmp_path / RUN_LOG).write_text(json.dumps({"notebooks": notebooks, **record}), encoding="utf-8")
    for stage in STAGES:
        (tmp_path / f"{stage.name}.html").write_text("<html></html>", encoding="utf-8")

    page = read_index(Path(write_index(params)).parent)
    assert page.sections == ["answer", "provenance", "notebooks", *(section.key for section in STORY), "other-figures"]
    assert "Not produced yet: run stage 04_evaluate." in page.text["answer"]  # no products in this folder
    figures = {figure["src"]: figure for figure in page.figures}
    for section in STORY:
        for name in section.figures:
            if name in placed:
                figure = figures.pop(f"figures/{name}.png")
                assert figure == {
                    "section": section.key,
                    "href": f"figures/{name}.png",  # a click opens the PNG full size
                    "src": f"figures/{name}.png",
                    "title": f"Title of {name}",
                    "caption": f"What {name} shows.",
                }
    assert (
        list(figures) == ["figures/made_later.png"] and figures["figures/made_later.png"]["section"] == "other-figures"
    )
    assert all(src == link for src, link in page.images)
    assert page.provenance["command"] == "kdlib run params/tiny.yaml --only 05"
    digest = hashlib.sha256((REPO / "params" / "tiny.yaml").read_bytes()).hexdigest()
    assert page.provenance["params file"] == f"params/tiny.yaml (sha256 {digest[:12]})"
    assert page.provenance["commit"] == "not a git checkout" and re.fullmatch(
        r"\d{4}-\d\d-\d\d", page.provenance["date"]
    )
    assert "CPUs" in page.provenance["machine"]
    assert "02_filter_sweep found <this>." in page.text["sweep"]  # findings escaped, in their section
    assert page.examples == [("errors", "rtl")]
    assert "The tiny profile has no published counterpart" in page.text["published"]
    assert "synthetic speech" in (tmp_path / "index.html").read_text(encoding="utf-8")
    assert MACHINE_PATH.findall((tmp_path / "index.html").read_text(encoding="utf-8")) == []

    notebooks.pop("04_evaluate")  # not rendered yet: the section says so, not "no published counterpart"
    (tmp_path / RUN_LOG).write_text(json.dumps({"notebooks": notebooks, **record}), encoding="utf-8")
    (tmp_path / "04_evaluate.html").unlink()
    page = read_index(Path(write_index(params)).parent)
    assert "Not produced yet: run stage 04_evaluate." in page.text["published"]
    assert "04_evaluate.html" not in (tmp_path / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_ci_index_places_every_figure_with_a_caption(ci_yaml: Path, ci_report: Path) -> None:
    page = read_index(ci_report)
    assert story_order(page) == [section.key for section in STORY] and "other-figures" not in page.sections
    assert page.sections[0] == "answer"  # the answer first: the best student against the teacher, the filter
    assert (
        "Best student" in page.text["answer"] and "% [" in page.text["answer"] and "The filter" in page.text["answer"]
    )
    made = sorted(path.name for path in (ci_report / "figures").glob("*.png"))
    assert sorted(str(figure["src"]).removeprefix("figures/") for figure in page.figures) == made
    for figure in page.figures:
        assert figure["href"] == figure["src"] and figure["title"].strip(), figure
        assert figure["caption"].strip().endswith("."), figure
    assert set(page.provenance) == {"command", "params file", "commit", "date", "machine", "run log"}
    digest = hashlib.sha256(ci_yaml.read_bytes()).hexdigest()[:12]
    assert page.provenance["params file"].endswith(f"ci.yaml (sha256 {digest})")
    assert (
        page.provenance["command"].startswith("kdlib run ") and not Path(page.provenance["command"][10:]).is_absolute()
    )


@pytest.mark.slow
def test_the_ci_pages_resolve_and_name_no_machine_path(ci_report: Path) -> None:
    folders = "|".join(re.escape(str(folder)) for folder in (ci_report.parents[1], REPO))
    absolute = re.compile(rf"(?<![\w.])(?:{folders})")
    for page in sorted(ci_report.glob("*.html")):  # the session's folder and the repository, never as absolute paths
        text = page.read_text(encoding="utf-8")
        assert broken_targets(page) == [], page.name
        assert MACHINE_PATH.findall(text) == [] and absolute.findall(text) == [], page.name
