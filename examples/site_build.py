"""A small static-site build: discover → parse → [render, assets] → write.

Works on real files in a fresh temporary folder (under ``$SITE_BUILD_ROOT`` if set,
else the system's temp dir), which is left in place so you can look at the output:

    phasewise run examples/site_build.py --executor thread -j 4
    python examples/site_build.py

``discover`` writes ~20 markdown-ish sources and a stylesheet, ``parse`` reads them,
``render`` (HTML) and ``assets`` (the stylesheet) run in parallel, and ``write`` puts
the pages, an index and the assets into ``out/``. Every handler is a module-level
function taking plain data, so process executors can pickle it.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from phasewise import Phase, Pipeline

PAGES = 20
TOPICS = ("phases", "executors", "plugins", "sagas", "stores", "reducers", "workers")

CSS = """body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
h1 { border-bottom: 1px solid #ccc; }
li { margin: 0.2em 0; }
"""


def discover() -> dict[str, Any]:
    """Create the site's sources in a new temporary folder."""
    root = Path(tempfile.mkdtemp(prefix="phasewise-site-", dir=os.environ.get("SITE_BUILD_ROOT")))
    src = root / "src"
    src.mkdir()
    sources = []
    for i in range(PAGES):
        topic = TOPICS[i % len(TOPICS)]
        path = src / f"page-{i:02d}.md"
        path.write_text(
            f"# Page {i}: on {topic}\n\n"
            f"This page explains {topic}, part {i}.\nIt is generated.\n\n"
            f"- {topic} are useful\n- page {i} of {PAGES}\n",
            encoding="utf-8",
        )
        sources.append(str(path))
    (src / "style.css").write_text(CSS, encoding="utf-8")
    print(f"discovered {len(sources)} sources in {src}")
    return {"root": str(root), "sources": sources}


def _parse_page(path: Path) -> dict[str, Any]:
    """A page is a ``# title``, paragraphs (blank-line separated) and ``- item`` lists."""
    title = path.stem
    blocks: list[dict[str, Any]] = []
    paragraph: list[str] = []
    items: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("- "):
            items.append(line[2:].strip())
        elif line.strip():
            paragraph.append(line.strip())
        else:
            if paragraph:
                blocks.append({"kind": "p", "text": " ".join(paragraph)})
            if items:
                blocks.append({"kind": "ul", "items": items})
            paragraph, items = [], []
    return {"slug": path.stem, "title": title, "blocks": blocks}


def parse(context: dict[str, Any]) -> dict[str, Any]:
    """Read every source into a page: title and blocks."""
    found = context["discover"]
    pages = []
    for source in found["sources"]:
        page = _parse_page(Path(source))
        print(f"parsed {page['slug']}: {page['title']!r}, {len(page['blocks'])} blocks")
        pages.append(page)
    return {"root": found["root"], "pages": pages}


def _render_block(block: dict[str, Any]) -> str:
    if block["kind"] == "ul":
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block["items"]) + "</ul>"
    return f"<p>{html.escape(block['text'])}</p>"


def render(context: dict[str, Any]) -> dict[str, str]:
    """HTML for every page, by slug."""
    rendered = {}
    for page in context["parse"]["pages"]:
        body = "\n".join(_render_block(b) for b in page["blocks"])
        title = html.escape(page["title"])
        rendered[page["slug"]] = (
            f"<!doctype html>\n<html><head><title>{title}</title>"
            f'<link rel="stylesheet" href="style.css"></head>\n'
            f"<body><h1>{title}</h1>\n{body}\n</body></html>\n"
        )
    print(f"rendered {len(rendered)} pages")
    return rendered


def assets(context: dict[str, Any]) -> dict[str, Any]:
    """Copy the stylesheet into the output folder; returns that folder and the files."""
    root = Path(context["parse"]["root"])
    out = root / "out"
    out.mkdir(exist_ok=True)
    target = out / "style.css"
    shutil.copyfile(root / "src" / "style.css", target)
    print(f"copied style.css ({target.stat().st_size} bytes)")
    return {"output_dir": str(out), "files": [str(target)]}


def write(context: dict[str, Any]) -> dict[str, Any]:
    """Write the pages and an index; returns counts and where the site is."""
    out = Path(context["assets"]["output_dir"])
    pages = context["render"]
    written = 0
    for slug, text in sorted(pages.items()):
        written += (out / f"{slug}.html").write_text(text, encoding="utf-8")
    links = "".join(f'<li><a href="{slug}.html">{slug}</a></li>' for slug in sorted(pages))
    written += (out / "index.html").write_text(
        f"<!doctype html>\n<html><body><ul>{links}</ul></body></html>\n", encoding="utf-8"
    )
    files = len(pages) + 1 + len(context["assets"]["files"])
    print(f"wrote {files} files ({written} characters of HTML) to {out}")
    return {"pages": len(pages), "files": files, "html_chars": written, "output_dir": str(out)}


pipeline = Pipeline(
    "site_build",
    Phase("discover", discover, description="generate the markdown sources"),
    Phase("parse", parse, description="read sources into pages", depends_on=("discover",)),
    Phase("render", render, description="pages to HTML", depends_on=("parse",)),
    Phase("assets", assets, description="copy the stylesheet", depends_on=("parse",)),
    Phase("write", write, description="write the site", depends_on=("render", "assets"),
          weight=2),
    capture_output=True,
    parallel=True,  # phases whose dependencies are done may run at once (up to -j)
)


if __name__ == "__main__":
    result = pipeline.run(executor="thread")
    for phase in result.state.phases:
        print(f"{phase.name:<9} {phase.status:<10} {phase.elapsed:.3f}s {phase.error}")
    result.raise_for_status()
    print(result.results["write"])
