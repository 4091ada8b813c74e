"""The website as readers see it, in a real browser.

The built site is served on 127.0.0.1 and read by Debian's Chromium (driven by Playwright; no
browser is downloaded). Every page listed in ``_toc.yml`` is visited once, in reading order,
arriving by its "next" link or its sidebar link alternately (and the last page's "previous" link is
clicked at the end); on each page the walk records console errors, failed requests, the state of the
mathematics, every image, the navigation links, the launch and download buttons and the page's
weight, audits it with axe-core in light and dark mode (see "accessibility" below), and saves a
full-page screenshot to ``_build/screenshots/`` for review. The tests below then check what the walk
recorded, so a failure names the page and the element. Nothing leaves the machine: requests to any other address are
blocked and reported as failures (the site ships its own MathJax, see ``tools/course_tools/book.py``).

Run only these tests with ``pytest -m browser`` (the book is built first, as ``make book`` does).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
import yaml

from helpers import REPO

browser = pytest.mark.browser

CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # belt and braces: no host name resolves, so nothing but 127.0.0.1 can be reached
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SCREENSHOTS = REPO / "_build" / "screenshots"
PAGE_LIMIT = 2_000_000    # bytes: one page's HTML plus the images it loads
SITE_LIMIT = 50_000_000   # bytes: the whole of _build/html
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 20_000
# text that means mathematics was left unrendered or broken (code blocks are not searched): any dollar
# sign (a `$$` that MyST read as text, a `$|m|$` whose pipes split a table cell), a TeX delimiter
# `\(` `\)` `\[` `\]`, or a TeX command such as `\frac`, `\mathbf`, `\sum`, `\begin{` (a JavaScript regex)
RAW_TEX = r"\$|\\[()\[\]]|\\[A-Za-z]+"
# markers of the instructor's version of a lab (otter-grader's master format)
MASTER_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN QUESTION", "BEGIN TESTS", "BEGIN HIDDEN TESTS")


# --- the table of contents ---------------------------------------------------------------------

def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` in reading order (the order of the book's next/previous links)."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    pages = [_strip_suffix(toc["root"])]

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                pages.append(_strip_suffix(node["file"]))
            if "glob" in node:
                found = sorted({_strip_suffix(str(p.relative_to(REPO))) for ext in ("md", "ipynb")
                                for p in REPO.glob(f"{node['glob']}.{ext}")})
                pages.extend(found)
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    walk(node[key])

    walk({k: v for k, v in toc.items() if k != "root"})
    return list(dict.fromkeys(pages))


def _strip_suffix(file: str) -> str:
    return re.sub(r"\.(md|ipynb|rst)$", "", str(file))


def is_notebook_page(page: str) -> bool:
    """A page whose source is a notebook (an .ipynb, or MyST Markdown with a kernelspec): it gets
    launch buttons."""
    if (REPO / f"{page}.ipynb").is_file():
        return True
    md = REPO / f"{page}.md"
    if not md.is_file():
        return False
    front = re.match(r"---\n(.*?)\n---", md.read_text(encoding="utf8"), re.S)
    return bool(front and "kernelspec" in front.group(1))


def is_lab_page(page: str) -> bool:
    return re.fullmatch(r"labs/[^/]+/student/[^/]+", page) is not None


def book_config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


# --- serving the site and recording what the browser sees --------------------------------------

class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class Visit:
    page: str
    url: str
    arrived_by: str = ""
    problems: list[str] = field(default_factory=list)       # navigation that did not work
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    documents: dict[str, int] = field(default_factory=dict)  # url -> HTTP status
    loaded: dict[str, str] = field(default_factory=dict)     # url -> resource type
    info: dict = field(default_factory=dict)                 # what the page's DOM said
    animations: list[str] = field(default_factory=list)      # problems with JavaScript animations
    animation_layout: list[str] = field(default_factory=list)  # animation controls unlabelled, or too wide for a phone
    axe: dict[str, list[dict]] = field(default_factory=dict)   # colour mode -> axe-core's violations
    screenshot: Path | None = None
    weight: int = 0
    weight_all: int = 0

    @property
    def status(self) -> int | None:
        return self.documents.get(self.url)


class Recorder:
    """Attributes every console message, request and response to the page being visited."""

    def __init__(self, base: str):
        self.base = base
        self.current: Visit | None = None
        self._origin = {}
        self.blocked: set[str] = set()
        self._answered_badly = set()

    def start(self, visit: Visit) -> Visit:
        self.current = visit
        return visit

    def attach(self, context, page):
        context.route("**/*", self._route)
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.current.console.append(f"uncaught JavaScript error: {err}"))
        page.on("request", lambda req: self._origin.__setitem__(req, self.current))
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base + "/") or url == self.base:
            route.continue_()
        else:
            self.blocked.add(url)
            visit = self._origin.get(route.request, self.current)
            visit.failed.append(f"request to a non-local address (the site must work offline): {url}")
            route.abort("blockedbyclient")

    def _console(self, msg):
        # "Failed to load resource" repeats a failed request, which is reported with its URL
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            loc = msg.location or {}
            where = f" ({loc.get('url', '')}:{loc.get('lineNumber', '')})" if loc.get("url") else ""
            self.current.console.append(f"{msg.text}{where}")

    def _request_failed(self, request):
        visit = self._origin.pop(request, self.current)
        failure = request.failure or "failed"
        if request.url in self.blocked or request in self._answered_badly:
            return
        if "ERR_ABORTED" in failure and visit is not self.current:
            return  # a request of the previous page, cancelled because we navigated away
        visit.failed.append(f"{request.method} {request.url}: {failure}")

    def _response(self, response):
        visit = self._origin.get(response.request, self.current)
        url, status = response.url, response.status
        if response.request.resource_type == "document":
            visit.documents[urldefrag(url)[0]] = status
        if status >= 400:
            self._answered_badly.add(response.request)
            visit.failed.append(f"HTTP {status} for {url}")
        elif url.startswith(self.base):
            visit.loaded[url] = response.request.resource_type


def local_file(html: Path, base: str, url: str) -> Path | None:
    if not url.startswith(base):
        return None
    path = unquote(urlsplit(url).path).lstrip("/")
    target = html / path
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


# --- what a page's DOM says --------------------------------------------------------------------

#: the text nodes of ``root`` that a reader sees and that hold raw TeX (RAW_TEX), outside code and
#: outside the formulas MathJax has typeset; one hit per text node, with some text around the match
STRAY_TEX_JS = r"""
(root) => {
  const skip = 'pre, code, script, style, textarea, noscript, mjx-container';
  const visible = (el) => (el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null);
  const pattern = new RegExp(%RAW_TEX%);
  const hits = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || el.closest(skip) || !visible(el)) continue;
    const match = pattern.exec(node.textContent);
    if (match) {
      const i = match.index, around = node.textContent.slice(Math.max(0, i - 30), i + 40);
      hits.push({element: el, token: match[0], text: JSON.stringify(around)});
    }
  }
  return hits;
}
""".replace("%RAW_TEX%", json.dumps(RAW_TEX))


INSPECT_JS = r"""
async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const describe = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) {
      let s = e.tagName.toLowerCase();
      if (e.id) { parts.unshift(s + '#' + e.id); break; }
      const cls = [...e.classList].slice(0, 2).join('.');
      if (cls) s += '.' + cls;
      const same = e.parentElement ? [...e.parentElement.children].filter((c) => c.tagName === e.tagName) : [];
      if (same.length > 1) s += `:nth-of-type(${same.indexOf(e) + 1})`;
      parts.unshift(s);
    }
    const section = el.closest('section[id]');
    return parts.join(' > ') + (section ? ` (in section #${section.id})` : '');
  };
  const visible = (el) => (el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null);

  // images: load the lazy ones now and wait until every image has loaded or failed
  for (const img of document.images) if (img.loading === 'lazy') img.loading = 'eager';
  await Promise.race([
    Promise.all([...document.images].map((img) => img.complete ? null : new Promise((r) => {
      img.addEventListener('load', r); img.addEventListener('error', r); }))),
    sleep(10000)]);

  // mathematics: MathJax's startup promise resolves once the page is typeset
  let mathjax = 'not loaded';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try {
      const done = await Promise.race([MathJax.startup.promise.then(() => true), sleep(15000).then(() => false)]);
      mathjax = done ? 'typeset' : 'timed out typesetting';
    } catch (e) { mathjax = 'failed: ' + e; }
  } else if (window.MathJax) {
    mathjax = 'configured, but the MathJax script did not run';
  }
  if (document.fonts) await Promise.race([document.fonts.ready, sleep(5000)]);

  const code = 'pre, code, script, style, textarea, noscript, mjx-container';
  const maths = [...document.querySelectorAll('span.math, div.math')].filter((el) => !el.parentElement.closest(code));
  const unrendered = maths.filter((el) => !el.querySelector('mjx-container'))
                          .map((el) => `${describe(el)}: ${el.textContent.replace(/\s+/g, ' ').trim().slice(0, 60)}`);
  const rawTex = (%STRAY_TEX_JS%)(document.body).map((hit) => `${describe(hit.element)}: ${hit.text}`);

  const links = (sel) => [...document.querySelectorAll(sel)].map((a) => ({
    text: a.textContent.trim().replace(/\s+/g, ' '), href: a.href, visible: visible(a)}));
  const one = (sel) => { const a = document.querySelector(sel); return a ? a.href : null; };
  const prose = [...document.querySelectorAll('article p, article li')]
    .filter((e) => !e.closest('.cell, pre, .output, .cell_output')).map((e) => e.innerText).join(' ');
  return {
    title: (document.querySelector('article h1, main h1') || {}).textContent || '',
    mathjax, math_count: maths.length, unrendered, raw_tex: rawTex,
    // formulas a keyboard user must Tab through (but not those wider than the column, which need the
    // keyboard to scroll), and formulas a screen reader cannot read
    math_tab_stops: [...document.querySelectorAll('mjx-container')].filter((m) => m.tabIndex >= 0 &&
      !(['auto', 'scroll'].includes(getComputedStyle(m).overflowX) && m.scrollWidth > m.clientWidth + 1)).length,
    math_unreadable: [...document.querySelectorAll('mjx-container')]
      .filter((m) => !m.querySelector('mjx-assistive-mml math')).length,
    title_number: ((document.querySelector('article h1') || document.body).querySelector('.section-number') || {}).textContent || '',
    images: [...document.images].map((img) => {
      const figure = img.closest('figure'), caption = figure && figure.querySelector('figcaption');
      const text = (sel) => ((caption && caption.querySelector(sel)) || {}).textContent || '';
      const link = img.closest('a[href]');
      return {
        where: describe(img), src: (img.getAttribute('src') || '').slice(0, 70), alt: img.getAttribute('alt'),
        natural_width: img.naturalWidth, full_src: img.src, in_article: !!img.closest('article'),
        figure: figure ? figure.id || '(no id)' : null,
        figure_number: text('.caption-number').trim(), caption: text('.caption-text').trim(),
        link: link ? link.href : null};
    }),
    prev: one('a.left-prev'), next: one('a.right-next'),
    sidebar: links('nav.bd-docs-nav a[href]'),
    launch: links('.dropdown-launch-buttons a[href]'),
    downloads: links('.dropdown-download-buttons a[href]'),
    animations: [...document.querySelectorAll('img[id^="_anim_img"]')].map((img) => img.id),
    article_text: (document.querySelector('article') || document.body).innerText,
    code_text: [...document.querySelectorAll('article pre')].map((p) => p.innerText).join('\n'),
    prose,
  };
}
""".replace("%STRAY_TEX_JS%", STRAY_TEX_JS)


def _settle(page):
    try:
        page.wait_for_load_state("networkidle", timeout=10_000)
    except Exception:  # a page that keeps the network busy is still inspected; failures are recorded
        pass


def inspect(page, visit: Visit, html: Path, base: str, checked_styles: dict[str, set[str]]):
    t = [time.perf_counter()]
    visit.info = page.evaluate(INSPECT_JS)  # waits for the images, MathJax and the fonts
    t.append(time.perf_counter())
    _settle(page)  # anything still loading is loaded (or has failed, and is recorded) before we move on
    t.append(time.perf_counter())
    visit.screenshot = SCREENSHOTS / (visit.page.replace("/", "__") + ".jpg")
    # JPEG: a long page encodes in half the time of a PNG, and reads as well for a review
    page.screenshot(path=str(visit.screenshot), full_page=True, type="jpeg", quality=70)
    t.append(time.perf_counter())
    visit.info["timing"] = [round(b - a, 2) for a, b in zip(t, t[1:])]
    # weight: the HTML plus the images the page loaded (data-URI images are inside the HTML)
    files = {url: local_file(html, base, url) for url in visit.loaded}
    visit.weight = sum(f.stat().st_size for url, f in files.items()
                       if f is not None and visit.loaded[url] in ("document", "image"))
    visit.weight_all = sum(f.stat().st_size for f in files.values() if f is not None)
    for anim_id in visit.info["animations"]:
        try:
            problem = play_animation(page, anim_id)
        except Exception as exc:  # a player that cannot be driven at all is a failure of this page, not of the walk
            problem = f"could not be played: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        if problem:
            visit.animations.append(f"animation img#{anim_id}: {problem}")
    if visit.info["animations"]:
        visit.animation_layout = animation_controls_on_a_phone(page)
    started = time.perf_counter()
    visit.axe = audit_accessibility(page, checked_styles)
    visit.info["timing"].append(round(time.perf_counter() - started, 2))


def play_animation(page, img_id: str) -> str | None:
    """Step a matplotlib ``to_jshtml`` player one frame, then play it: the frame must change each
    time. Returns what went wrong, or None."""
    frame = f"document.getElementById({json.dumps(img_id)}).src"
    player = page.locator(f'div.animation:has(img[id="{img_id}"])')
    for control in ("Next frame", "Play"):
        button = player.locator(f'button[aria-label="{control}"], button[title="{control}"]').first
        if button.count() == 0:
            return f"has no '{control}' button"
        before = page.evaluate(frame)
        button.click(timeout=5_000)
        try:
            page.wait_for_function(f"() => {frame} !== {json.dumps(before)}", timeout=5_000)
        except Exception:
            return f"the frame did not change after a click on '{control}'"
    pause = player.locator('button[aria-label="Pause"], button[title="Pause"]').first
    if pause.count():
        pause.click()
    return None


# --- accessibility: axe-core on every page, in light and dark mode --------------------------------
#
# axe-core (the copy that the pinned PyPI package axe-playwright-python bundles, so nothing is fetched)
# runs the WCAG 2.1 A and AA rules on each page the walk visits, once with the theme in light mode and
# once in dark mode, in the walk's own browser page (no second load). Two things keep it to a few
# seconds for the whole book (measured: 10 s a chapter page for a plain axe.run, 18 pages x 2 modes):
#
# - in dark mode only the rules that read colours run: every other rule checks the markup, which is
#   the same in both modes;
# - the colour rules check one element of each text style, once in the whole book, not every element
#   on every page. A chapter page has 6,000 syntax-highlighting spans and 3,000 MathJax elements, in a
#   few dozen styles, most of them on every page; axe's verdict on an element's contrast depends on
#   its text colour, whether it is large text (WCAG: 24 px, or 18.66 px and bold), its shadow, the
#   background colours and opacities behind it and, for a link in text, how it differs from the text
#   around it, so elements alike in all of those get the same verdict (what this misses: text that
#   another element overlaps, which axe can only flag for a person to review anyway). A violation
#   is reported on the first page that shows its style. The self-test below checks that a faint
#   style is still found, in each mode.

#: WCAG 2.1 levels A and AA, as axe-core tags its rules
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: the rules whose verdict depends on colours, hence on the colour mode
AXE_COLOUR_RULES = ["color-contrast", "link-in-text-block"]
#: rules not run. css-orientation-lock reads the stylesheets, which axe fetches again ("preload") and
#: gets wrong: it resolves the theme's ``@import "../basic.css"`` against the page instead of the
#: stylesheet, so every page makes a request that fails with 404 and the rule's verdict is unreliable
#: (https://github.com/dequelabs/axe-core/issues/5268). Neither the theme nor the course locks the
#: orientation; with the preload off, no rule fetches anything.
AXE_SKIPPED = ["css-orientation-lock"]
#: the impacts that fail the test (axe's "moderate" and "minor" are reported, not failed)
AXE_FAILING = ("critical", "serious")

AUDIT_JS = r"""
async ({tags, colourRules, skipped, mode, everyRule, checked}) => {
  // the theme's stylesheets key their colours on data-theme, which its colour-mode button sets; a
  // page already in the mode is left untouched (restyling a chapter page costs a fraction of a second)
  const root = document.documentElement, was = root.dataset.theme, switching = was !== mode;
  // axe reads computed colours: no colour may be half way through a transition when it does
  const still = document.createElement('style');
  still.textContent = '*, *::before, *::after { transition: none !important; animation: none !important; }';
  if (switching) {
    document.head.append(still);
    root.dataset.theme = mode;
  }
  // the backgrounds and opacities behind an element, up to the first opaque background (memoised: a
  // page has thousands of elements and a few hundred ancestors)
  const memo = new Map();
  const behind = (el) => {
    if (!el) return '';
    if (memo.has(el)) return memo.get(el);
    const s = getComputedStyle(el), layers = [];
    if (s.opacity !== '1') layers.push('opacity ' + s.opacity);
    if (s.backgroundImage !== 'none') layers.push('image');
    if (s.backgroundColor !== 'rgba(0, 0, 0, 0)') layers.push(s.backgroundColor);
    const opaque = s.backgroundColor !== 'rgba(0, 0, 0, 0)' && !s.backgroundColor.startsWith('rgba');
    if (!opaque) layers.push(behind(el.parentElement));  // an opaque background hides what is further back
    const chain = layers.join(' / ');
    memo.set(el, chain);
    return chain;
  };
  const ownText = (el) => {
    for (let n = el.firstChild; n; n = n.nextSibling) if (n.nodeType === 3 && n.textContent.trim()) return true;
    return false;
  };
  // one visible element per text style not checked before (on an earlier page): the elements axe's
  // colour rules would check, grouped by what decides their verdict; marked for the colour rules
  const seen = new Set(checked), styles = new Map(), mark = 'data-course-axe-style';
  for (const el of document.body.querySelectorAll('*')) {
    if (!ownText(el)) continue;
    const s = getComputedStyle(el), size = parseFloat(s.fontSize), weight = parseFloat(s.fontWeight);
    // WCAG's large text (24 px, or 18.66 px and bold) needs a contrast of 3 instead of 4.5
    const large = size >= 24 || (size >= 18.66 && weight >= 700);
    // a link in text must also stand out from the text around it (link-in-text-block)
    const parent = el.parentElement ? getComputedStyle(el.parentElement) : s;
    const link = el.matches('a[href], [role=link]') ? [s.textDecorationLine, s.textDecorationColor, s.fontWeight,
      s.fontStyle, s.borderBottomStyle, s.backgroundImage, parent.color, parent.fontWeight, parent.fontStyle] : [];
    const key = [s.color, large ? 'large' : 'normal', s.textShadow === 'none' ? '' : `${s.textShadow} at ${size}px`,
                 ...link, behind(el)].join(' | ');
    if (seen.has(key) || styles.has(key) || !el.checkVisibility({visibilityProperty: true})) continue;
    styles.set(key, el);
    el.setAttribute(mark, '');
  }
  const brief = (result) => result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({target: n.target.join(' '), html: n.html.replace(/\s+/g, ' ').slice(0, 160)}))}));
  try {
    // the colour rules look at the marked elements only; every other rule at the whole page
    axe.configure({rules: [{id: 'color-contrast', selector: `[${mark}]`},
                           {id: 'link-in-text-block', selector: `a[href][${mark}], [role=link][${mark}]`}]});
    const options = {resultTypes: ['violations'], preload: false,
                     rules: Object.fromEntries(skipped.map((id) => [id, {enabled: false}]))};
    const runOnly = everyRule ? {type: 'tag', values: tags} : {type: 'rule', values: colourRules};
    const found = everyRule || styles.size ? brief(await axe.run(document, {...options, runOnly})) : [];
    return {violations: found, styles: [...styles.keys()]};
  } finally {
    for (const el of styles.values()) el.removeAttribute(mark);
    if (switching) {
      if (was === undefined) delete root.dataset.theme; else root.dataset.theme = was;
      still.remove();
    }
  }
}
"""


def audit_accessibility(page, checked_styles: dict[str, set[str]] | None = None) -> dict[str, list[dict]]:
    """axe-core's violations of WCAG 2.1 A/AA on the page in ``page``, per colour mode: every rule in
    light mode, the colour rules in dark mode (the page is left in the mode it was in). The colour
    rules skip the text styles in ``checked_styles[mode]`` (checked on earlier pages), and the styles
    checked here are added to it."""
    checked_styles = {"light": set(), "dark": set()} if checked_styles is None else checked_styles
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        try:
            from axe_playwright_python.base import AXE_SCRIPT  # axe.min.js, axe-core 4.12
        except ImportError:
            pytest.fail("the accessibility audit needs the axe-playwright-python package (a dev dependency: run `make`)")
        page.evaluate(AXE_SCRIPT)
    found = {}
    for mode in ("light", "dark"):
        checked = checked_styles.setdefault(mode, set())
        audit = page.evaluate(AUDIT_JS, {"tags": AXE_TAGS, "colourRules": AXE_COLOUR_RULES, "skipped": AXE_SKIPPED,
                                         "mode": mode, "everyRule": mode == "light", "checked": sorted(checked)})
        checked.update(audit["styles"])
        found[mode] = audit["violations"]
    return found


def axe_table(visits) -> list[dict]:
    """One row per rule and colour mode: its impact, the pages it fails on and the elements it names."""
    rows = {}
    for visit in visits:
        for mode, violations in visit.axe.items():
            for v in violations:
                row = rows.setdefault((v["id"], mode), {"rule": v["id"], "mode": mode, "impact": v["impact"],
                                                        "pages": 0, "nodes": 0})
                row["pages"] += 1
                row["nodes"] += len(v["nodes"])
    order = {"critical": 0, "serious": 1, "moderate": 2, "minor": 3}
    return sorted(rows.values(), key=lambda r: (order.get(r["impact"], 4), r["rule"], r["mode"]))


#: the phone the animation's controls must fit (an iPhone 12 to 15: 390 CSS px wide)
PHONE = {"width": 390, "height": 844}

ANIMATION_CONTROLS_JS = r"""
() => {
  const problems = [], column = document.querySelector('article').getBoundingClientRect();
  for (const player of document.querySelectorAll('div.animation')) {
    const slider = player.querySelector('input[type=range]');
    if (slider && !(slider.getAttribute('aria-label') || '').trim() && !(slider.labels && slider.labels.length))
      problems.push('its slider has no label');
    for (const button of player.querySelectorAll('button')) {
      const name = (button.getAttribute('aria-label') || button.title || '').trim();
      if (!name) problems.push(`a button (${button.outerHTML.slice(0, 60)}) has no name`);
      // a symbol drawn from a font shows as an empty box where no installed font has it
      if (/[^\x00-\x7f]/.test(button.textContent) || !button.querySelector('svg :is(path, rect, polygon, circle)'))
        problems.push(`the '${name}' button draws its symbol with a font ` +
                      `(${JSON.stringify(button.textContent.trim())}), not an inline SVG icon`);
    }
    for (const el of player.querySelectorAll('img, input, button, label')) {
      const r = el.getBoundingClientRect();
      if (r.width && (r.left < column.left - 0.5 || r.right > column.right + 0.5))
        problems.push(`at ${innerWidth} px, its ${el.tagName.toLowerCase()} ` +
                      `${el.getAttribute('aria-label') || el.textContent.trim() || ''} spans ` +
                      `${r.left.toFixed(0)}-${r.right.toFixed(0)} px, outside the column ` +
                      `(${column.left.toFixed(0)}-${column.right.toFixed(0)} px)`);
    }
  }
  return problems;
}
"""


def animation_controls_on_a_phone(page) -> list[str]:
    """What is wrong with the page's animation players on a phone: a control without a label, a
    button whose symbol needs a font, a control outside the column at 390 px."""
    desktop = page.viewport_size
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_function(f"() => innerWidth === {PHONE['width']}", timeout=5_000)
        return page.evaluate(ANIMATION_CONTROLS_JS)
    finally:
        page.set_viewport_size(desktop)


# --- the walk through the book ----------------------------------------------------------------

@dataclass
class Walk:
    base: str
    html: Path
    pages: list[str]
    visits: dict[str, Visit]
    extra: list[Visit]
    seconds: float
    cpu_seconds: float = 0.0  # this process, the Playwright driver and the browser: a figure that load does not inflate

    def url(self, page: str) -> str:
        return f"{self.base}/{page}.html"

    def page_of(self, url: str | None) -> str | None:
        if not url:
            return None
        path = urldefrag(url)[0].split("?")[0]
        for page in self.pages:
            if path == self.url(page):
                return page
        return None


@pytest.fixture(scope="module")
def site(built_book):
    html = built_book["html"]
    if not (html / "index.html").is_file():
        proc = built_book["process"]
        pytest.fail(f"the book was not built (see test_book.py):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield html, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def chromium(site):
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tests need a Chromium or Chrome at {CHROMIUM}: `make test` finds or installs one "
                    "(tools/course_tools/browser.py), or set COURSE_CHROMIUM=/path/to/chromium; deselect them with "
                    "-m 'not browser'")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need the playwright package (a dev dependency: run `make`)")
    html, base = site
    with sync_playwright() as p:
        browser_ = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser_.new_context(viewport=VIEWPORT, service_workers="block")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        recorder = Recorder(base)
        recorder.attach(context, page)
        try:
            yield context, page, recorder
        finally:
            context.close()
            browser_.close()


def _click_to(page, locator, url: str) -> str | None:
    """Click ``locator`` and wait until the page at ``url`` has loaded; return what went wrong."""
    try:
        with page.expect_navigation(wait_until="load", timeout=TIMEOUT_MS):
            locator.click()
    except Exception as exc:
        return f"clicking it did not load a page ({type(exc).__name__})"
    arrived = urldefrag(page.url)[0]
    return None if arrived == url else f"it led to {arrived}"


@pytest.fixture(scope="module")
def walk(site, chromium) -> Walk:
    html, base = site
    context, page, recorder = chromium
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in [*SCREENSHOTS.glob("*.png"), *SCREENSHOTS.glob("*.jpg")]:
        old.unlink()
    pages = toc_pages()
    w = Walk(base, html, pages, {}, [], 0.0)
    checked_styles = {"light": set(), "dark": set()}  # text styles whose contrast axe has checked
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    for i, name in enumerate(pages):
        url = w.url(name)
        visit = w.visits[name] = recorder.start(Visit(name, url))
        if i == 0:
            visit.arrived_by = "the site's front door (index.html)"
            page.goto(base + "/", wait_until="load")
            try:
                page.wait_for_url(url, timeout=5_000)
            except Exception:
                visit.problems.append(f"{base}/ did not lead to the root page {url} (it stayed at {page.url})")
                page.goto(url, wait_until="load")
        else:
            previous = pages[i - 1]
            # alternate the two ways a reader moves on, so both are exercised by real clicks
            by_sidebar = i % 2 == 0
            link, how = None, "the 'next' link"
            if by_sidebar:
                index = page.evaluate(
                    "(url) => [...document.querySelectorAll('nav.bd-docs-nav a[href]')]"
                    ".findIndex((a) => a.href.split('#')[0] === url && a.checkVisibility())", url)
                if index >= 0:
                    link, how = page.locator("nav.bd-docs-nav a[href]").nth(index), "the sidebar link"
            if link is None:
                link = page.locator("a.right-next").first
            visit.arrived_by = f"{how} of {previous}"
            problem = _click_to(page, link, url) if link.count() else "there is no such link"
            if problem:
                w.visits[previous].problems.append(f"{how} to {name}: {problem}")
                page.goto(url, wait_until="load")
        inspect(page, visit, html, base, checked_styles)
    # the one link that the walk does not click: "previous"
    if len(pages) > 1:
        last, before = pages[-1], pages[-2]
        back = recorder.start(Visit(f"{before} (again, by 'previous')", w.url(before), arrived_by=f"the 'previous' link of {last}"))
        w.extra.append(back)
        problem = _click_to(page, page.locator("a.left-prev").first, back.url) if page.locator("a.left-prev").count() \
            else "there is no such link"
        if problem:
            w.visits[last].problems.append(f"the 'previous' link to {before}: {problem}")
        _settle(page)
    w.seconds = time.perf_counter() - started
    w.cpu_seconds = _cpu_seconds() - cpu_started
    return w


def _cpu_seconds() -> float:
    """CPU time of this process and its children that are still running (the browser)."""
    try:
        import psutil
    except ImportError:
        return 0.0
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _report(lines: list[str], what: str, per_page: int = 12) -> str:
    """The failure message: one line per problem, at most ``per_page`` lines for any one page."""
    shown, hidden = [], Counter()
    for line in lines:
        page = line.split(": ", 1)[0]
        if sum(1 for s in shown if s.split(": ", 1)[0] == page) < per_page:
            shown.append(line)
        else:
            hidden[page] += 1
    shown += [f"{page}: ... and {n} more" for page, n in hidden.items()]
    return f"{what}:\n  " + "\n  ".join(shown)


# --- the tests ---------------------------------------------------------------------------------

@browser
def test_every_page_loads_without_console_errors_or_failed_requests(walk):
    bad = []
    for visit in [*walk.visits.values(), *walk.extra]:
        if visit.status != 200:
            bad.append(f"{visit.page}: the page itself answered HTTP {visit.status} ({visit.url})")
        bad += [f"{visit.page}: console error: {msg}" for msg in visit.console]
        bad += [f"{visit.page}: failed request: {msg}" for msg in visit.failed]
    assert not bad, _report(bad, "pages that did not load cleanly")


@browser
def test_mathematics_is_rendered_by_mathjax(walk):
    bad = []
    for visit in walk.visits.values():
        info = visit.info
        if info["math_count"] and info["mathjax"] != "typeset":
            bad.append(f"{visit.page}: {info['math_count']} formulas but MathJax {info['mathjax']}")
        bad += [f"{visit.page}: formula not rendered: {where}" for where in info["unrendered"]]
    assert not bad, _report(bad, "mathematics left unrendered")
    assert any(v.info["math_count"] for v in walk.visits.values()), "no page has any mathematics: is the math parser on?"


@browser
def test_no_page_shows_a_stray_dollar_sign_or_raw_tex(walk):
    """Mathematics that the parser did not see as mathematics shows as text: a ``$$`` display inside a
    list item, a ``$|m|$`` in a table, whose pipes split the cell, a ``\\frac`` outside any formula."""
    bad = [f"{visit.page}: raw TeX in the visible text: {where}" for visit in walk.visits.values()
           for where in visit.info["raw_tex"]]
    assert not bad, _report(bad, "broken mathematics on the page (a dollar sign or a TeX command outside a formula)")


BROKEN_MATHEMATICS = r"""
<article>
  <table><tr><td>ReLU</td><td>close to zero for large $</td><td>m</td><td>most networks</td></tr></table>
  <ul><li>upsampled by 2 to meet them: $<span class="math">S_{16} = C(U_2 S_{32})</span>$</li></ul>
  <p>a formula the parser missed: \frac{1}{2} \sum_i x_i</p>
  <p>and one left in delimiters: \(x\)</p>
  <pre>cost = $5 + \frac{a}{b}</pre>
  <p>in code: <code>echo $HOME \n</code>, and in a typeset formula: <mjx-container>\mathbf{x}</mjx-container></p>
  <p style="display: none">hidden: $x$</p>
  <p>Prices in prose need no dollar sign; backslashes neither.</p>
</article>
"""


@browser
def test_the_raw_tex_check_finds_broken_mathematics_and_nothing_else(chromium):
    """The check above, on a page that holds the two breakages this site once had and the text it
    must leave alone (code, formulas MathJax typeset, hidden text)."""
    context, _page, _recorder = chromium
    page = context.new_page()
    try:
        page.set_content(BROKEN_MATHEMATICS)
        hits = page.evaluate(f"() => ({STRAY_TEX_JS})(document.body).map((hit) => [hit.element.tagName, hit.token])")
    finally:
        page.close()
    assert hits == [["TD", "$"], ["LI", "$"], ["LI", "$"], ["P", "\\frac"], ["P", "\\("]], hits


@browser
def test_chapters_are_numbered_and_every_chapter_figure_has_a_numbered_caption(walk):
    """A book's apparatus: chapter N is numbered N in the sidebar and in its title (chapter 0 is
    Getting started, as its file name says), and every image a chapter shows sits in a figure
    numbered N.1, N.2, ... in order, with a caption for sighted readers (the alt text stays for
    screen readers, see above) and a link to the image at full size (for a phone); the frames of
    an animation are inline images, so its figure needs no link."""
    chapters = [p for p in walk.pages if re.fullmatch(r"chapters/\d\d_\w+", p)]
    assert chapters, "_toc.yml lists no chapter page (chapters/NN_slug)"
    bad, figures = [], Counter()
    for name in chapters:
        number = int(name.split("/")[1][:2])
        info = walk.visits[name].info
        if info["title_number"].strip() != f"{number}.":
            bad.append(f"{name}: its title is numbered {info['title_number'].strip()!r}, not '{number}.'")
        entries = [link["text"] for link in info["sidebar"] if walk.page_of(link["href"]) == name]
        if not entries or not entries[0].startswith(f"{number}. "):
            bad.append(f"{name}: its sidebar entry reads {entries[:1]}, not '{number}. <title>'")
        seen = []
        for img in (i for i in info["images"] if i["in_article"]):
            where = f"{name}: <img> {img['where']} (src {img['src']!r})"
            if img["figure"] is None:
                bad.append(f"{where} is not inside a figure")
                continue
            found = re.fullmatch(r"Fig(?:ure|\.) (\d+)\.(\d+)", img["figure_number"])
            if not found:
                bad.append(f"{where}: its figure has no caption number (it reads {img['figure_number']!r})")
            elif int(found[1]) != number:
                bad.append(f"{where}: its figure is numbered {img['figure_number']!r} in chapter {number}")
            elif img["figure"] not in seen:
                seen.append(img["figure"])
                if int(found[2]) != len(seen):
                    bad.append(f"{where}: figure {img['figure_number']!r} is the {len(seen)}th figure of the page")
            if len(img["caption"]) < 10:
                bad.append(f"{where}: its figure's caption is {img['caption']!r}")
            if not img["src"].startswith("data:") and (img["link"] or "").split("#")[0] != img["full_src"]:
                bad.append(f"{where} is not a link to itself at full size (it links to {img['link']})")
        figures[name] = len(seen)
    assert not bad, _report(bad, "chapters and figures without their numbers and captions")
    print("numbered figures per chapter:", dict(figures))


@browser
def test_every_image_has_decoded_and_has_alt_text(walk):
    bad = []
    for visit in walk.visits.values():
        for img in visit.info["images"]:
            where = f"{visit.page}: <img> {img['where']} (src {img['src']!r})"
            if not img["natural_width"]:
                bad.append(f"{where} did not decode (naturalWidth 0)")
            alt = (img["alt"] or "").strip()
            if not alt:
                bad.append(f"{where} has no alt text")
            elif img["src"] and not img["src"].startswith("data:") and alt in (img["src"], img["src"].rsplit("/", 1)[-1]):
                bad.append(f"{where} has its file name as alt text (no alt was given)")
    assert not bad, _report(bad, "images that readers (or screen readers) cannot see")


@browser
def test_next_previous_and_sidebar_links_lead_to_pages_that_load(walk):
    bad = [f"{v.page}: {p}" for v in walk.visits.values() for p in v.problems]
    loaded = {walk.url(p) for p, v in walk.visits.items() if v.status == 200}
    for i, name in enumerate(walk.pages):
        info = walk.visits[name].info
        expected_prev = walk.url(walk.pages[i - 1]) if i > 0 else None
        expected_next = walk.url(walk.pages[i + 1]) if i + 1 < len(walk.pages) else None
        for which, href, expected in (("previous", info["prev"], expected_prev), ("next", info["next"], expected_next)):
            target = urldefrag(href)[0] if href else None
            if expected and target != expected:
                bad.append(f"{name}: the '{which}' link goes to {target}, expected {expected} (the order of _toc.yml)")
            elif target and target not in loaded:
                bad.append(f"{name}: the '{which}' link goes to {target}, which did not load")
        targets = {urldefrag(link["href"])[0] for link in info["sidebar"]}
        for target in sorted(targets - loaded):
            bad.append(f"{name}: a sidebar link goes to {target}, which is not a page of _toc.yml that loaded")
        for missing in sorted({walk.url(p) for p in walk.pages} - targets):
            bad.append(f"{name}: the sidebar has no link to {missing}")
    assert not bad, _report(bad, "navigation that does not work")


@browser
def test_every_page_has_a_full_page_screenshot(walk):
    missing = [v.page for v in walk.visits.values() if not (v.screenshot and v.screenshot.is_file()
                                                            and v.screenshot.stat().st_size > 0)]
    assert not missing, f"pages without a screenshot in {SCREENSHOTS}: {missing}"
    heaviest = max(walk.visits.values(), key=lambda v: v.weight)
    print(f"browser: {len(walk.visits)} pages walked in {walk.seconds:.1f} s ({walk.cpu_seconds:.0f} s of CPU), "
          f"{len(walk.visits)} screenshots in {SCREENSHOTS.relative_to(REPO)}/, heaviest page {heaviest.page} "
          f"({heaviest.weight / 1e3:.0f} kB of HTML and images)")


@browser
def test_each_page_and_the_whole_site_stay_light(walk):
    heavy = [f"{v.page}: {v.weight / 1e6:.2f} MB of HTML and images" for v in walk.visits.values() if v.weight > PAGE_LIMIT]
    assert not heavy, _report(heavy, f"pages over {PAGE_LIMIT / 1e6:.0f} MB")
    total = sum(f.stat().st_size for f in walk.html.rglob("*") if f.is_file())
    assert total < SITE_LIMIT, f"_build/html is {total / 1e6:.1f} MB, over {SITE_LIMIT / 1e6:.0f} MB"
    _write_summary(walk, total)


def _write_summary(walk: Walk, total: int):
    heaviest = max(walk.visits.values(), key=lambda v: v.weight)
    summary = {
        "pages_tested": len(walk.visits),
        "screenshots": sorted(str(v.screenshot.relative_to(REPO)) for v in walk.visits.values() if v.screenshot),
        "heaviest_page": {"page": heaviest.page, "html_and_images_bytes": heaviest.weight},
        "site_bytes": total,
        "walk_seconds": round(walk.seconds, 1),
        "walk_cpu_seconds": round(walk.cpu_seconds, 1),
        "accessibility_seconds": round(sum(v.info["timing"][-1] for v in walk.visits.values()), 1),
        "accessibility_violations": axe_table(walk.visits.values()),
        "pages": {v.page: {"html_and_images_bytes": v.weight, "all_resources_bytes": v.weight_all,
                           "arrived_by": v.arrived_by, "formulas": v.info["math_count"],
                           "images": len(v.info["images"]),
                           "seconds_inspect_settle_screenshot_accessibility": v.info.get("timing")}
                  for v in walk.visits.values()},
    }
    (SCREENSHOTS / "summary.json").write_text(json.dumps(summary, indent=2))


@browser
def test_notebook_pages_have_launch_buttons_for_the_repository(walk):
    config = book_config()
    repo_url = config["repository"]["url"].rstrip("/")
    repo_path = urlsplit(repo_url).path.strip("/")
    services = {key: url.rstrip("/") for key, url in (config.get("launch_buttons") or {}).items()
                if key.endswith("_url") and url}
    assert services, "_config.yml configures no launch buttons (binderhub_url, jupyterhub_url, colab_url)"
    bad, checked = [], 0
    for name, visit in walk.visits.items():
        if not is_notebook_page(name):
            continue
        checked += 1
        hrefs = [unquote(link["href"]) for link in visit.info["launch"]]
        for key, service in services.items():
            mine = [h for h in hrefs if h.startswith(service)]
            if not mine:
                bad.append(f"{name}: no launch button for {key} ({service})")
            elif not any(repo_path in h for h in mine):
                bad.append(f"{name}: the {key} launch button does not open the repository {repo_url}: {mine[0]}")
    assert checked, "no page of _toc.yml is a notebook, so no launch button was checked"
    assert not bad, _report(bad, "launch buttons missing")


@browser
def test_lab_pages_show_the_student_version_with_a_working_download_link(walk, chromium):
    context, _page, _recorder = chromium
    labs = [p for p in walk.pages if is_lab_page(p)]
    assert labs, "_toc.yml lists no lab page (labs/*/student/*)"
    bad = []
    for name in labs:
        info = walk.visits[name].info
        for marker in MASTER_MARKERS:
            if marker in info["article_text"]:
                bad.append(f"{name}: the page shows {marker!r}: it is the instructor's version, not the student's")
        stem = name.rsplit("/", 1)[-1]
        links = [link["href"] for link in info["downloads"] if urlsplit(link["href"]).path.endswith(f"/{stem}.ipynb")]
        if not links:
            bad.append(f"{name}: no download link for {stem}.ipynb in the download menu ({[l['href'] for l in info['downloads']]})")
            continue
        response = context.request.get(links[0])
        if response.status != 200:
            bad.append(f"{name}: the download link {links[0]} answers HTTP {response.status}")
            continue
        text = response.text()
        try:
            nb = json.loads(text)
        except ValueError:
            bad.append(f"{name}: the download {links[0]} is not JSON")
            continue
        cells = nb.get("cells")
        if not isinstance(cells, list) or not cells:
            bad.append(f"{name}: the downloaded notebook has no cells")
            continue
        # otter's student format marks a written (manual) question with HTML comments, which do not show
        # and which otter's PDF export of the answers needs: they are not the master's markers
        student_text = re.sub(r"<!-- (BEGIN|END) QUESTION -->", "", text)
        bad += [f"{name}: the downloaded notebook contains {m!r}" for m in MASTER_MARKERS if m in student_text]
        assignment = nb.get("metadata", {}).get("otter", {}).get("assignment_name")
        if assignment != stem:
            bad.append(f"{name}: the downloaded notebook's otter assignment name is {assignment!r}, not {stem!r}")
        if "hidden=True" in text:
            bad.append(f"{name}: the downloaded notebook carries hidden tests")
        # the page shows this notebook: its answer cells, with the `...` students fill in, are on the page
        shown = re.sub(r"\s+", " ", info["code_text"])
        blanks = [_source(c) for c in cells if c.get("cell_type") == "code" and re.search(r"(^|[=(\s])\.\.\.\s*$", _source(c), re.M)]
        if not blanks:
            bad.append(f"{name}: the downloaded notebook has no `...` for students to fill in")
        for source in blanks:
            if re.sub(r"\s+", " ", source).strip() not in shown:
                bad.append(f"{name}: the answer cell {source.strip()[:60]!r} of the student notebook is not on the page")
    assert not bad, _report(bad, "lab pages")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


@browser
def test_search_finds_a_word_from_a_chapter_page(walk, chromium):
    _context, page, recorder = chromium
    chapters = [p for p in walk.pages if p.startswith("chapters/") and walk.visits[p].info["prose"].strip()]
    assert chapters, "no chapter page with text in _toc.yml"
    chapter = chapters[0]
    words = Counter(w.lower() for w in re.findall(r"\b[A-Za-z]{8,}\b", walk.visits[chapter].info["prose"]))
    word = sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    visit = recorder.start(Visit(f"search.html?q={word}", f"{walk.base}/search.html"))
    page.goto(f"{walk.base}/search.html?q={word}", wait_until="load")
    page.wait_for_function(
        "() => { const h = document.querySelector('#search-results h2'); return h && h.textContent.startsWith('Search Results'); }",
        timeout=TIMEOUT_MS)
    _settle(page)
    found = page.evaluate("() => [...document.querySelectorAll('#search-results ul.search li a')].map((a) => a.href)")
    pages = {walk.page_of(href) for href in found}
    assert chapter in pages, f"searching for {word!r} (on {chapter}) found {found or 'nothing'}"
    problems = visit.console + visit.failed
    assert not problems, _report(problems, "the search page did not work cleanly")


@browser
def test_animations_play_when_their_controls_are_clicked(walk):
    pages = {name: v for name, v in walk.visits.items() if v.info["animations"]}
    assert "chapters/03_upsampling_transposed_conv" in pages, (
        "chapter 3's transposed-convolution player (matplotlib's to_jshtml: img#_anim_img...) was not found on its page")
    bad = [f"{name}: {problem}" for name, v in pages.items() for problem in v.animations]
    assert not bad, _report(bad, "animations that do not play")


@browser
def test_animation_controls_are_labelled_drawn_without_fonts_and_fit_a_phone(walk):
    pages = {name: v for name, v in walk.visits.items() if v.info["animations"]}
    assert pages, "no page has an animation player"
    bad = [f"{name}: {problem}" for name, v in pages.items() for problem in v.animation_layout]
    assert not bad, _report(bad, "animation players that a screen reader, a machine without symbol fonts or a "
                                 f"{PHONE['width']}-px phone cannot use")


@browser
def test_no_page_has_a_critical_or_serious_accessibility_violation_in_light_or_dark_mode(walk):
    """axe-core's WCAG 2.1 A/AA rules on every page of ``_toc.yml``, with the theme in light and in
    dark mode (see "accessibility" above): no critical or serious violation. The table of every rule
    that fails, whatever its impact, is printed and saved in ``summary.json``."""
    bad = []
    for visit in walk.visits.values():
        for mode, violations in visit.axe.items():
            for v in (v for v in violations if v["impact"] in AXE_FAILING):
                first = v["nodes"][0] if v["nodes"] else {"target": "?", "html": ""}
                where = " (one element per text style is checked, on the first page that shows it)" \
                    if v["id"] in AXE_COLOUR_RULES else ""
                bad.append(f"{visit.page} ({mode} mode): {v['impact']} '{v['id']}' ({v['help']}) on {len(v['nodes'])} "
                           f"element(s){where}, first {first['target']}: {first['html']}")
    table = axe_table(walk.visits.values())
    print("axe-core, WCAG 2.1 A/AA, rules that fail (impact, mode, pages, elements):",
          [(r["rule"], r["impact"], r["mode"], r["pages"], r["nodes"]) for r in table] or "none",
          f"({sum(v.info['timing'][-1] for v in walk.visits.values()):.1f} s for {len(walk.visits)} pages)")
    assert len(walk.visits) == len(walk.pages) and all(set(v.axe) == {"light", "dark"} for v in walk.visits.values())
    # what the skipped rule (AXE_SKIPPED) would look for: a stylesheet that locks the orientation
    bad += [f"{css.relative_to(walk.html)}: a stylesheet with an orientation media query (css-orientation-lock is not run)"
            for css in (walk.html / "_static").rglob("*.css") if "orientation" in css.read_text(errors="replace")]
    assert not bad, _report(bad, "accessibility violations (axe-core, WCAG 2.1 A/AA)")


INACCESSIBLE = """<!DOCTYPE html>
<html lang="en"><title>One problem of each kind</title>
<style>
  html[data-theme="dark"] body { background: #111; color: #eee; }
  html[data-theme="dark"] .faint-in-dark { color: #333; }
</style>
<main>
  <h1>A page with one problem of each kind</h1>
  <p>Readable text, and <span style="color: #bbb">pale text</span> that is not.</p>
  <p class="faint-in-dark">Readable in light mode only.</p>
  <p>Readable again.</p>
  <input type="range" min="0" max="9">
  <details><summary><i class="icon"></i></summary><p>sections</p></details>
</main>
</html>
"""


@browser
def test_the_accessibility_audit_finds_problems_in_either_colour_mode(chromium):
    """The audit above, on a page with an unlabelled slider (critical), a nameless expand arrow
    (serious) and text too faint in light mode and, in another style, in dark mode only (serious):
    checking one element per style must still find both faint styles, each in its own mode."""
    context, _page, _recorder = chromium
    page = context.new_page()
    try:
        page.set_content(INACCESSIBLE)
        found = audit_accessibility(page)
        theme = page.evaluate("() => document.documentElement.dataset.theme")
    finally:
        page.close()
    ids = {mode: sorted({v["id"] for v in violations}) for mode, violations in found.items()}
    assert ids == {"light": ["color-contrast", "label", "summary-name"], "dark": ["color-contrast"]}, ids
    faint = {mode: [n["html"] for v in violations if v["id"] == "color-contrast" for n in v["nodes"]]
             for mode, violations in found.items()}
    assert [h for h in faint["light"] if "pale" in h] and not [h for h in faint["light"] if "faint" in h], faint
    assert [h for h in faint["dark"] if "faint-in-dark" in h], faint
    assert theme is None, "the audit must leave the page in the colour mode it found"


@browser
def test_formulas_are_read_by_screen_readers_but_are_not_tab_stops(walk):
    """MathJax makes every formula a Tab stop for its menu (chapter 3 had 194, over a hundred
    of them before its animation's controls); ``_config.yml`` takes them out of the Tab order, and
    ``static/course.js`` puts back only a formula wider than the column, which the keyboard must be
    able to scroll. Each formula keeps its hidden MathML, which is what a screen reader reads."""
    bad = []
    for visit in walk.visits.values():
        info = visit.info
        if info["math_tab_stops"]:
            bad.append(f"{visit.page}: {info['math_tab_stops']} of {info['math_count']} formulas are Tab stops")
        if info["math_unreadable"]:
            bad.append(f"{visit.page}: {info['math_unreadable']} formulas have no MathML for a screen reader")
    assert not bad, _report(bad, "formulas in the keyboard's way, or hidden from screen readers")


#: whether the focused element (or, for the sidebar's arrows, the icon inside it) draws a focus ring:
#: an outline or a box-shadow at least 2 px wide in a colour that is not transparent
FOCUS_RING_JS = r"""
() => {
  const el = document.activeElement;
  const opaque = (colour) => !/rgba\([^)]*,\s*0\)$/.test(colour) && colour !== 'transparent';
  const ring = (e) => {
    const s = getComputedStyle(e);
    if (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 && opaque(s.outlineColor)) return true;
    return s.boxShadow !== 'none' && s.boxShadow.split(/,(?![^(]*\))/).some((shadow) => {
      const colour = (shadow.match(/rgba?\([^)]*\)/) || ['rgb(0, 0, 0)'])[0];
      const px = (shadow.replace(colour, '').match(/-?[\d.]+px/g) || []).map(parseFloat);
      return opaque(colour) && (px[3] || 0) >= 2;
    });
  };
  const where = el.closest('.bd-header, .bd-header-article, .bd-sidebar-primary, article');
  const name = (el.getAttribute('aria-label') || el.title || el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 50);
  return {area: where ? where.className.split(' ')[0] : 'elsewhere', tag: el.tagName.toLowerCase(), name,
          ring: ring(el) || [...el.querySelectorAll('.toctree-toggle')].some(ring)};
}
"""


@browser
def test_header_and_sidebar_controls_show_a_focus_ring(walk, chromium):
    """Pressing Tab from the top of a chapter page, every control of the header and the sidebar that
    takes the focus shows where it is (sphinx-book-theme removes the ring from its header buttons;
    ``tools/course_tools/static/course.css`` puts it back)."""
    context, _page, _recorder = chromium
    chapter = next(p for p in walk.pages if re.fullmatch(r"chapters/\d\d_\w+", p) and is_notebook_page(p))
    page = context.new_page()
    seen, bad = [], []
    try:
        page.goto(walk.url(chapter), wait_until="load")
        for _ in range(80):  # the skip link, the header, the sidebar's links and arrows, the article's header
            page.keyboard.press("Tab")
            focus = page.evaluate(FOCUS_RING_JS)
            if focus["area"] == "article":
                break
            if focus["tag"] == "body":  # the window itself had the focus (the first press, in a new tab)
                continue
            seen.append(focus)
            if not focus["ring"]:
                bad.append(f"{chapter}: the {focus['area']} {focus['tag']} {focus['name']!r} shows no focus ring")
    finally:
        page.close()
    assert sum(f["area"] == "bd-header-article" for f in seen) >= 4, \
        f"Tab did not reach the article's header buttons: {seen}"
    assert not bad, _report(bad, "controls a keyboard user cannot see")


def test_binder_environment_spec_installs_the_course_with_the_pinned_versions():
    """The launch buttons start the labs on Binder or a JupyterHub from ``.binder/``."""
    binder = REPO / ".binder"
    requirements = (binder / "requirements.txt").read_text()
    post_build = (binder / "postBuild").read_text()
    assert os.access(binder / "postBuild", os.X_OK), ".binder/postBuild must be executable"
    assert "-c ../constraints.txt" in requirements, "Binder must install the versions pinned in constraints.txt"
    assert "download.pytorch.org/whl/cpu" in requirements, "Binder has no GPU: torch should be the CPU build"
    pinned = {line.split("==")[0].lower() for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line}
    wanted = [re.split(r"[<>=\[ ;]", line.strip())[0].lower() for line in requirements.splitlines()
              if line.strip() and not line.lstrip().startswith(("#", "-"))]
    assert wanted and not [w for w in wanted if w not in pinned], f"unpinned in constraints.txt: {[w for w in wanted if w not in pinned]}"
    assert "pip install" in post_build and "./tools" in post_build and "course_tools.grading.assign" in post_build
    runtime = (binder / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.1[1-9]", runtime), runtime
