"""The website's own build step: a Sphinx extension that ships MathJax with the site, so the
mathematics renders without the internet.

Jupyter Book's default loads MathJax 3 from a CDN, which fails on a machine that is offline (a
student's laptop on a train, the CI machines that run the browser tests). This extension copies the
few MathJax files a page needs from an installed package (``django-static-mathjax``, which ships
MathJax 3.2.2 and is pinned in ``constraints.txt``) into ``_build/html/_static/mathjax/`` at the end
of every HTML build; ``mathjax_path`` in ``_config.yml`` points the pages at that copy. Nothing of
MathJax is committed to the repository.

Listed in ``_config.yml`` under ``sphinx: extra_extensions``, so every ``jupyter-book build`` (``make
book``, the test suite, a manual build) runs it: there is no separate step to forget.

It also works around a Sphinx 7.4 bug that puts a JavaScript error on every page: an inline script
that an extension registers once the build has started (sphinx-thebe's ``const THEBE_JS_URL = ...``)
is written into the page twice, and a ``const`` declared twice is a ``SyntaxError``.

Why not a ``_static/`` folder at the book's root: Jupyter Book adds every ``.js`` file found under the
static folders to *every* page, which would load all of MathJax's extensions on each page.

Two more things a book needs and Jupyter Book does not do:

- **Chapters numbered from 0.** The course's first chapter is chapter 0 (Getting started, with Lab 0),
  and Sphinx numbers a toctree from 1. ``course_first_chapter_number: 0`` (``_config.yml``, under
  ``sphinx: config:``) shifts every number the build assigns, so the sidebar, the titles, the figure
  numbers and every ``{numref}`` say the same thing.
- **Figures open at full size.** Each image inside a figure links to its own file, so a reader on a
  phone, where the column shrinks a figure to a third of its size, can open it and zoom.

And it fixes what the browser tests' accessibility audit (axe-core) finds in the theme's and the
writers' own markup, where the course can:

- **The sidebar's expand arrows get a name.** pydata-sphinx-theme draws each "show the sections"
  arrow as a ``<summary>`` holding only an icon, which a screen reader announces as an unnamed
  disclosure (axe: ``summary-name``, serious, on every page); each now says "Sections of <title>".
- **The bibliography is a list of list items.** docutils writes the citations as
  ``role="doc-biblioentry"`` inside ``role="list"``: a role that DPUB-ARIA 1.1 deprecates, and so a list
  with no list items (axe: ``aria-required-children``, critical). Each citation becomes a ``listitem``.
- **A visible focus ring on the header's buttons**, from the course's stylesheet ``static/course.css``.
- **Wide formulas stay reachable by keyboard.** ``_config.yml`` takes formulas out of the Tab order;
  ``static/course.js`` puts back those wider than the column, which scroll sideways (axe:
  ``scrollable-region-focusable``, serious).
"""

from __future__ import annotations

import posixpath
import re
import shutil
from importlib import resources
from pathlib import Path

#: where the copy lands under the HTML output's ``_static`` folder, and what ``mathjax_path`` names
MATHJAX_DIR = "mathjax"
MATHJAX_ENTRY = "tex-mml-chtml.js"
MATHJAX_PATH = f"{MATHJAX_DIR}/{MATHJAX_ENTRY}"

#: the course's stylesheet and script, shipped with this module and linked from every page
STATIC_DIR = Path(__file__).parent / "static"
STYLESHEET = "course.css"
SCRIPT = "course.js"

#: the files a page loads, relative to MathJax's ``es5`` folder: the combined TeX/MathML-to-HTML
#: component, the web fonts it draws with, and the TeX extensions it autoloads for macros such as
#: ``\boldsymbol`` or ``\cancel`` (2 MB in all, against 10 MB for the whole package; a page loads the
#: component, 1.2 MB, and only the fonts and extensions it uses)
MATHJAX_FILES = (MATHJAX_ENTRY, "output/chtml/fonts/woff-v2/*.woff", "input/tex/extensions/*.js")


def mathjax_source() -> Path:
    """MathJax's ``es5`` folder inside the installed ``django-static-mathjax`` package."""
    try:
        root = Path(str(resources.files("mathjax"))) / "static" / "mathjax"
    except ModuleNotFoundError:
        root = None
    if root is None or not (root / "es5" / MATHJAX_ENTRY).is_file():
        raise RuntimeError(
            "MathJax is not installed: the website ships its own copy so that mathematics renders offline. "
            "Install the book's dependencies (`make`, or `pip install -c constraints.txt -e '.[book]'`), "
            "which include django-static-mathjax."
        )
    return root / "es5"


def copy_mathjax(static_dir: Path) -> list[Path]:
    """Copy the MathJax files a page loads into ``static_dir/mathjax`` (with MathJax's licence) and
    return the copied paths. Files already there and unchanged are left alone."""
    source = mathjax_source()
    dest = Path(static_dir) / MATHJAX_DIR
    copied = []
    for pattern in MATHJAX_FILES:
        matches = sorted(source.glob(pattern))
        if not matches:
            raise RuntimeError(f"MathJax's {pattern} is missing from {source}: reinstall django-static-mathjax")
        for src in matches:
            copied.append(_copy_if_changed(src, dest / src.relative_to(source)))
    copied.append(_copy_if_changed(source.parent / "LICENSE", dest / "LICENSE"))
    return copied


def _copy_if_changed(src: Path, dst: Path) -> Path:
    if not (dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes()):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return dst


def _check_config(app, config) -> None:
    from sphinx.util import logging

    mathjax_path = getattr(config, "mathjax_path", None)
    if mathjax_path != MATHJAX_PATH:
        logging.getLogger(__name__).warning(
            f"mathjax_path is {mathjax_path!r}: set it to {MATHJAX_PATH!r} in _config.yml "
            "(sphinx: config:) so pages load the MathJax copy the site ships and render math offline"
        )
    mathjax_source()  # fail at the start of the build, not the end, if MathJax is not installed


def _add_static_dir(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]


def label_sidebar_toggles(soup) -> None:
    """Give each expand arrow of the sidebar (a ``<summary>`` with only an icon) the name "Sections of
    <the entry's title>", in place; an arrow that already has a name is left alone."""
    for item in soup.select("li.has-children"):
        link = item.find("a", recursive=False)
        summary = item.select_one(":scope > details > summary")
        if link is None or summary is None or summary.get_text(strip=True) or summary.get("aria-label"):
            continue
        summary["aria-label"] = f"Sections of {link.get_text(' ', strip=True)}"


def _name_sidebar_toggles(app, pagename, templatename, context, doctree) -> None:
    # runs after pydata-sphinx-theme put generate_toctree_html into the context (priority 500); it
    # returns a cached BeautifulSoup, so labelling it again on a later page finds the labels there
    generate = context.get("generate_toctree_html")
    if not callable(generate) or getattr(generate, "_course_labels_toggles", False):
        return

    def generate_with_names(kind, *args, **kwargs):
        soup = generate(kind, *args, **kwargs)
        if hasattr(soup, "select"):
            label_sidebar_toggles(soup)
        return soup

    generate_with_names._course_labels_toggles = True
    context["generate_toctree_html"] = generate_with_names


#: a citation as docutils' HTML5 writer opens it (``<div class="citation" id="..." role="doc-biblioentry">``)
_BIBLIOENTRY = re.compile(r'(<div class="citation"[^>]*?) role="doc-biblioentry"')


def _citations_as_list_items(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if isinstance(body, str) and "doc-biblioentry" in body:
        context["body"] = _BIBLIOENTRY.sub(r'\1 role="listitem"', body)


def _ship_mathjax(app, exception) -> None:
    if app.builder.format == "html" and Path(app.outdir).is_dir():
        copy_mathjax(Path(app.outdir) / "_static")


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    # Sphinx 7.4 registers such a script with the builder as file name None, then adds it again from
    # the registry as '' before writing (StandaloneHTMLBuilder.prepare_writing); they compare unequal.
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or "", getattr(js, "priority", None),
               repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # in place: the builder restores its own list after each page


def _renumber_chapters(app, env) -> list[str]:
    """Shift the numbers Sphinx gave the numbered toctree (chapters 1, 2, ...) so that the first
    chapter is ``course_first_chapter_number``: the section numbers (titles, ``{numref}`` to a
    section), the sidebar's entries and the next/previous links, and the figure numbers.

    Runs after Sphinx's own numbering (``env-get-updated``, which recomputes every number on every
    build, so each shift starts from Sphinx's numbers)."""
    from docutils import nodes

    shift = app.config.course_first_chapter_number - 1
    if not shift:
        return []

    def moved(number):
        return (number[0] + shift, *number[1:]) if number else number

    for docname, secnumbers in env.toc_secnumbers.items():
        for anchor, number in secnumbers.items():
            secnumbers[anchor] = moved(number)
        toc = env.tocs.get(docname)
        for reference in toc.findall(nodes.reference) if toc is not None else ():
            if reference.get("secnumber"):
                reference["secnumber"] = list(moved(reference["secnumber"]))
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = list(moved(title["secnumber"]))
    if app.config.numfig_secnum_depth:
        for docname, figtypes in env.toc_fignumbers.items():
            if env.toc_secnumbers.get(docname, {}).get(""):  # figures numbered "chapter.n"
                for numbers in figtypes.values():
                    for figure_id, number in numbers.items():
                        if len(number) > 1:
                            numbers[figure_id] = moved(number)
    return []


def _link_figures_to_full_size(app, doctree, docname) -> None:
    """Wrap each image of a figure in a link to the image file (as Sphinx does for scaled images)."""
    from docutils import nodes
    from sphinx.util.osutil import relative_uri

    if app.builder.format != "html":
        return
    images_dir = relative_uri(app.builder.get_target_uri(docname), getattr(app.builder, "imagedir", "_images"))
    for figure in doctree.findall(nodes.figure):
        for image in list(figure.findall(nodes.image)):
            uri = image.get("uri", "")
            if isinstance(image.parent, nodes.reference) or uri not in app.env.images:
                continue
            link = nodes.reference("", "", internal=True, classes=["full-size"],
                                   refuri=posixpath.join(images_dir, app.env.images[uri][1]))
            image.replace_self(link)
            link.append(image)


def setup(app):
    """Sphinx entry point: check ``mathjax_path`` when the configuration is read, number the chapters
    from ``course_first_chapter_number``, link figures to their images, write each page's scripts
    once, name the sidebar's arrows, make the bibliography a list, link the course's stylesheet and
    script, and copy MathJax into the output when an HTML build finishes."""
    app.add_config_value("course_first_chapter_number", 1, "env", types=[int])
    app.connect("config-inited", _check_config)
    app.connect("config-inited", _add_static_dir)
    app.add_css_file(STYLESHEET)
    app.add_js_file(SCRIPT, loading_method="defer")
    app.connect("html-page-context", _name_sidebar_toggles, priority=900)
    app.connect("html-page-context", _citations_as_list_items, priority=900)
    app.connect("env-get-updated", _renumber_chapters, priority=900)
    app.connect("doctree-resolved", _link_figures_to_full_size)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("build-finished", _ship_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
