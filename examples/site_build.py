"""A small static-site build, in seed 004's shape: discover → parse → [render, assets] → write.

Each phase works in its own folder of the run's work directory (a handler asks for it
with a parameter named ``workdir``) and hands its dependants what they need through its
result, so every phase can be looked at, and rerun, on its own::

    <work directory>/
      discover/   the generated sources: page-00.md ... and style.css
      render/     one .html per page
      assets/     the stylesheet, as published
      write/      the site: the pages, the assets and index.html

Run it::

    phasewise run examples/site_build.py -j 4               # kept in .phasewise/site_build
    phasewise run examples/site_build.py --param pages=5 --param title="My site"
    phasewise run examples/site_build.py --dry-run          # what would run, what is cached
    phasewise list examples/site_build.py                   # labels, params, folders, cache
    python examples/site_build.py                           # in a fresh folder under
                                                            # $SITE_BUILD_ROOT or the temp dir

``parse`` is cached for a day: run the build again in the same work directory and it is
``[CACHED]``. Every handler is a module-level function taking plain data, so process
executors can pickle it.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from phasewise import PipelineBuilder

TOPICS = ("phases", "executors", "plugins", "sagas", "stores", "reducers", "workers")

CSS = """body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
h1 { border-bottom: 1px solid #ccc; }
li { margin: 0.2em 0; }
"""

def _empty(folder: Path) -> Path:
    """A phase's folder is kept from run to run: start from nothing, so that no file of
    an earlier run (a page that is gone since) is taken for one of this run."""
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return folder


build = PipelineBuilder(
    "site_build",
    capture_output=True,
    parallel=True,  # phases whose dependencies are done may run at once (up to -j)
    params={"pages": 20, "title": "A generated site"},
)


@build.phase(label="Discovering sources", description="generate the markdown sources")
def discover(params: Any, workdir: Path) -> dict[str, Any]:
    """Write the site's sources into this phase's folder."""
    pages = int(params["pages"])
    _empty(workdir)
    sources = []
    for i in range(pages):
        topic = TOPICS[i % len(TOPICS)]
        path = workdir / f"page-{i:02d}.md"
        path.write_text(
            f"# Page {i}: on {topic}\n\n"
            f"This page explains {topic}, part {i}.\nIt is generated.\n\n"
            f"- {topic} are useful\n- page {i} of {pages}\n",
            encoding="utf-8",
        )
        sources.append(str(path))
    (workdir / "style.css").write_text(CSS, encoding="utf-8")
    print(f"discovered {len(sources)} sources in {workdir}")
    return {"sources": sources, "stylesheet": str(workdir / "style.css")}


def _parse_page(path: Path) -> dict[str, Any]:
    """A page is a ``# title``, paragraphs (blank-line separated) and ``- item`` lists."""
    title = ""
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


def untitled(result: dict[str, Any]) -> list[str]:
    """Validation between phases: a warning for each page without a title (shown under
    the phase in the summary); raising here would fail the phase instead."""
    return [f"{page['slug']} has no title" for page in result["pages"] if not page["title"]]


@build.phase(depends_on=discover, label="Parsing", cache="24h", validate=untitled,
             description="read sources into pages")
def parse(context: Any) -> dict[str, Any]:
    """Read every source into a page: title and blocks."""
    pages = []
    for source in context["discover"]["sources"]:
        page = _parse_page(Path(source))
        print(f"parsed {page['slug']}: {page['title']!r}, {len(page['blocks'])} blocks")
        pages.append(page)
    return {"pages": pages}


def _render_block(block: dict[str, Any]) -> str:
    if block["kind"] == "ul":
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block["items"]) + "</ul>"
    return f"<p>{html.escape(block['text'])}</p>"


@build.phase(depends_on=parse, label="Rendering pages", description="pages to HTML")
def render(context: Any, workdir: Path) -> dict[str, Any]:
    """An HTML file for every page, in this phase's folder."""
    _empty(workdir)
    files = []
    for page in context["parse"]["pages"]:
        body = "\n".join(_render_block(b) for b in page["blocks"])
        title = html.escape(page["title"] or page["slug"])
        path = workdir / f"{page['slug']}.html"
        path.write_text(
            f"<!doctype html>\n<html><head><title>{title}</title>"
            f'<link rel="stylesheet" href="style.css"></head>\n'
            f"<body><h1>{title}</h1>\n{body}\n</body></html>\n",
            encoding="utf-8",
        )
        files.append(str(path))
    print(f"rendered {len(files)} pages into {workdir}")
    return {"files": files}


@build.phase(depends_on=discover, label="Copying assets", description="copy the stylesheet")
def assets(context: Any, workdir: Path) -> dict[str, Any]:
    """Copy the stylesheet into this phase's folder."""
    target = _empty(workdir) / "style.css"
    shutil.copyfile(context["discover"]["stylesheet"], target)
    print(f"copied style.css ({target.stat().st_size} bytes)")
    return {"files": [str(target)]}


@build.phase(depends_on=[render, assets], label="Writing the site", weight=2,
             description="write the site")
def write(context: Any, params: Any, workdir: Path) -> dict[str, Any]:
    """Put the pages, the assets and an index into this phase's folder: the site."""
    _empty(workdir)
    written = 0
    slugs = []
    for source in map(Path, context["render"]["files"]):
        written += (workdir / source.name).write_text(source.read_text(encoding="utf-8"),
                                                      encoding="utf-8")
        slugs.append(source.stem)
    for asset in map(Path, context["assets"]["files"]):
        shutil.copyfile(asset, workdir / asset.name)
    links = "".join(f'<li><a href="{slug}.html">{slug}</a></li>' for slug in sorted(slugs))
    title = html.escape(str(params["title"]))
    written += (workdir / "index.html").write_text(
        f"<!doctype html>\n<html><head><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1><ul>{links}</ul></body></html>\n", encoding="utf-8"
    )
    files = len(slugs) + 1 + len(context["assets"]["files"])
    print(f"wrote {files} files ({written} characters of HTML) to {workdir}")
    return {"pages": len(slugs), "files": files, "html_chars": written,
            "output_dir": str(workdir)}


pipeline = build.build()


if __name__ == "__main__":
    root = Path(tempfile.mkdtemp(prefix="phasewise-site-", dir=os.environ.get("SITE_BUILD_ROOT")))
    result = pipeline.run(executor="thread", workdir=root)
    for phase in result.state.phases:
        print(f"{phase.name:<9} {phase.status:<10} {phase.elapsed:.3f}s {phase.error}")
    result.raise_for_status()
    print(result.results["write"])
