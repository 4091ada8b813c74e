"""Seeing a transposed convolution work: a step-by-step animation for the website and an
interactive explorer for the lab.

Taught in {ref}`sec-transposed-conv` (chapter 3, the animation), and used by lab 3, question 11 "Counting overlaps" (the explorer).

* :func:`transposed_conv_animation` draws a stride-``s`` transposed convolution one input pixel at
  a time: the pixel, the copy of the kernel it paints, and the running sum of the output. The
  partial outputs come from ``torch.nn.functional.conv_transpose2d`` applied to the input with all
  but the first ``t`` pixels set to zero, so the last frame is exactly PyTorch's output.
* :func:`animation_html` turns it into a self-contained JavaScript player
  (``FuncAnimation.to_jshtml``) that plays on a static web page without a kernel: it plays once by
  default, refuses to grow past a size limit, and draws its buttons as small inline SVG icons
  instead of matplotlib's icon font from a CDN, so it works offline and needs no installed font; its
  slider has a label and its controls fit a 390-px phone.
* :func:`transposed_conv_explorer` is an ipywidgets explorer of kernel size, stride, padding and
  output padding, drawing the input, the output and how many kernel copies overlap at every output
  pixel, counted by a function the student writes.
"""

from __future__ import annotations

import re
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import animation as mpl_animation
from matplotlib.patches import Rectangle

from .. import checks
from .masks import PALETTE

HIGHLIGHT = PALETTE[6]  # vermillion
COPY_EDGE = PALETTE[6]  # the same vermillion: the pixel and the copy it paints
MAX_HTML_BYTES = 1_500_000  # the animation's share of a page that must stay under 2 MB

# matplotlib's player draws its buttons with Font Awesome icons loaded from a CDN. Text symbols
# (U+23EE and friends) would need a font that has them: where only DejaVu is installed they show as
# empty boxes. Inline SVG icons (16x16, in the button's text colour) need neither the network nor a font;
# the buttons keep matplotlib's aria-label and title, so the icons are hidden from screen readers.
_BAR = '<rect x="{x}" y="3" width="2" height="10"/>'  # a bar, from x to x + 2
_LEFT, _RIGHT = '<path d="M{x} 3v10l-5-5z"/>', '<path d="M{x} 3v10l5-5z"/>'  # triangles with their flat side at x
_ICONS = {
    "fa fa-minus": '<rect x="3" y="7" width="10" height="2"/>',
    "fa fa-fast-backward": _BAR.format(x=1) + _LEFT.format(x=9) + _LEFT.format(x=15),
    "fa fa-step-backward": _LEFT.format(x=10) + _BAR.format(x=11),
    "fa fa-play fa-flip-horizontal": '<path d="M12 3v10l-8-5z"/>',
    "fa fa-pause": '<rect x="4" y="3" width="3" height="10"/><rect x="9" y="3" width="3" height="10"/>',
    "fa fa-play": '<path d="M4 3v10l8-5z"/>',
    "fa fa-step-forward": _BAR.format(x=3) + _RIGHT.format(x=6),
    "fa fa-fast-forward": _RIGHT.format(x=1) + _RIGHT.format(x=7) + _BAR.format(x=13),
    "fa fa-plus": '<rect x="3" y="7" width="10" height="2"/><rect x="7" y="3" width="2" height="10"/>',
}
_SVG = ('<svg class="anim-icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false" '
        'fill="currentColor">{}</svg>')
SLIDER_LABEL = "Frame of the animation"
# The player's own style gives the slider a fixed 374 px and nine 36-px buttons in one row, wider than
# a phone's 358-px column: the picture and the slider shrink with the column, the buttons (34 px, so
# that nine fit in 340) wrap on anything narrower.
_PLAYER_STYLE = """<style>
.animation { max-width: 100%; }
.animation img { max-width: 100%; height: auto; }
.animation input[type=range].anim-slider { width: 100%; max-width: 374px; box-sizing: border-box; }
.animation .anim-buttons { display: flex; flex-wrap: wrap; justify-content: center; gap: 4px; }
.animation .anim-buttons button {
  width: 34px; min-height: 28px; display: inline-flex; align-items: center; justify-content: center;
}
.animation .anim-state { display: flex; flex-wrap: wrap; justify-content: center; align-items: center; gap: 0 4px; }
</style>
"""


def _as_2d(t, name: str) -> torch.Tensor:
    return checks.tensor(torch.as_tensor(t, dtype=torch.float64), name, ndim=2, layout="(H, W)")


def transposed_conv_partial_sums(x, kernel, stride: int = 2, padding: int = 0) -> list[torch.Tensor]:
    """The output of a single-channel transposed convolution after each input pixel has painted its
    copy of the kernel, in row-major order: entry ``t`` uses the first ``t`` pixels (entry 0 is all
    zeros, the last entry is ``F.conv_transpose2d(x, kernel, stride, padding)``)."""
    x, kernel = _as_2d(x, "x"), _as_2d(kernel, "kernel")
    mask = torch.zeros(x.numel(), dtype=torch.float64)
    sums = []
    for t in range(x.numel() + 1):
        mask[:t] = 1
        part = x * mask.view_as(x)
        sums.append(F.conv_transpose2d(part[None, None], kernel[None, None], stride=stride, padding=padding)[0, 0])
    return sums


def _text_colour(v: float, vmax: float) -> str:
    # cividis and viridis are dark at the bottom and light at the top
    return "white" if v < 0.55 * vmax else "black"


def _annotate(ax, values: np.ndarray, fmt: str, vmax: float) -> list:
    texts = []
    for (i, j), v in np.ndenumerate(values):
        colour = _text_colour(v, vmax)
        texts.append(ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color=colour))
    return texts


def _grid(ax, shape, title):
    ax.set_xticks(np.arange(-0.5, shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, shape[0], 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(title, fontsize=9)


def transposed_conv_animation(x=None, kernel=None, stride: int = 2, padding: int = 0, interval: int = 1100,
                              figsize=(7.5, 3.0), dpi: int = 80) -> mpl_animation.FuncAnimation:
    """A FuncAnimation of a single-channel transposed convolution of ``x`` by ``kernel``.

    Frame 0 shows an empty output; frame ``t`` highlights input pixel ``t`` (row-major), shows the
    copy of the kernel it paints (the kernel times the pixel value) and outlines where that copy
    lands in the output, which holds the sum of the copies so far. Defaults: a 3x3 input of small
    integers and the 3x3 kernel ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``, stride 2 (a 7x7 output).
    The figure is closed, so a notebook shows only the player.
    """
    x = _as_2d(torch.tensor([[1.0, 2.0, 0.0], [3.0, 1.0, 2.0], [0.0, 2.0, 1.0]]) if x is None else x, "x")
    kernel = _as_2d(torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) if kernel is None else kernel, "kernel")
    if stride < 1 or padding < 0:
        raise ValueError(f"need stride >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    sums = [s.numpy() for s in transposed_conv_partial_sums(x, kernel, stride, padding)]
    out_vmax = float(max(np.abs(sums[-1]).max(), 1e-12))
    copy_vmax = float(max((x.abs().max() * kernel.abs().max()).item(), 1e-12))
    kh, kw = kernel.shape
    h, w = x.shape

    fig, axes = plt.subplots(1, 3, figsize=figsize, dpi=dpi, gridspec_kw=dict(width_ratios=[h, kh, sums[0].shape[1]]))
    ax_in, ax_copy, ax_out = axes
    im_in = ax_in.imshow(x.numpy(), cmap="cividis", vmin=0, vmax=float(x.abs().max()) or 1.0)
    _annotate(ax_in, x.numpy(), "g", float(x.abs().max()))
    _grid(ax_in, x.shape, "input $x$")
    pixel_box = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor=HIGHLIGHT, linewidth=2.5, visible=False)
    ax_in.add_patch(pixel_box)

    im_copy = ax_copy.imshow(np.zeros((kh, kw)), cmap="cividis", vmin=0, vmax=copy_vmax)
    copy_texts = _annotate(ax_copy, np.zeros((kh, kw)), "g", copy_vmax)
    _grid(ax_copy, (kh, kw), "copy painted")

    im_out = ax_out.imshow(sums[0], cmap="cividis", vmin=0, vmax=out_vmax)
    out_texts = _annotate(ax_out, sums[0], "g", out_vmax)
    _grid(ax_out, sums[0].shape, f"output (stride {stride})")
    copy_box = Rectangle((-0.5, -0.5), kw, kh, fill=False, edgecolor=COPY_EDGE, linewidth=2.5, visible=False)
    ax_out.add_patch(copy_box)
    fig.tight_layout()

    def update(t: int):
        if t == 0:
            pixel_box.set_visible(False)
            copy_box.set_visible(False)
            copy = np.zeros((kh, kw))
            ax_copy.set_title("copy painted", fontsize=9)
        else:
            i, j = divmod(t - 1, w)
            pixel_box.set_xy((j - 0.5, i - 0.5))
            pixel_box.set_visible(True)
            copy = float(x[i, j]) * kernel.numpy()
            # the copy of pixel (i, j) starts at output (i s - p, j s - p); padding crops it
            copy_box.set_xy((j * stride - padding - 0.5, i * stride - padding - 0.5))
            copy_box.set_visible(True)
            ax_copy.set_title(f"copy painted: {float(x[i, j]):g} x kernel", fontsize=9)
        im_copy.set_data(copy)
        for text, v in zip(copy_texts, copy.ravel()):
            text.set_text(format(v, "g"))
            text.set_color(_text_colour(v, copy_vmax))
        im_out.set_data(sums[t])
        for text, v in zip(out_texts, sums[t].ravel()):
            text.set_text(format(v, "g"))
            text.set_color(_text_colour(v, out_vmax))
        return [im_copy, im_out, pixel_box, copy_box, *copy_texts, *out_texts]

    anim = mpl_animation.FuncAnimation(fig, update, frames=len(sums), interval=interval, blit=False)
    anim.frame_count = len(sums)  # animation_html checks that every frame made it into the page
    plt.close(fig)
    return anim


def animation_html(anim: mpl_animation.FuncAnimation, default_mode: str = "once",
                   max_bytes: int = MAX_HTML_BYTES, alt: str | None = None) -> str:
    """The HTML of a JavaScript player for ``anim`` that works on a static page without a kernel.

    It embeds every frame as a PNG (``to_jshtml``), starts in ``default_mode`` ("once", "loop" or
    "reflect"), replaces the CDN icon font of the buttons by inline SVG icons, labels the slider, lets
    the controls wrap on a narrow screen, and raises if the result
    is larger than ``max_bytes`` (matplotlib's own ``animation.embed_limit`` is set to the same
    bound, so frames are never silently dropped). ``alt`` becomes the alternative text of the
    player's image, for readers who cannot see it.
    """
    if default_mode not in ("once", "loop", "reflect"):
        raise ValueError(f"default_mode must be 'once', 'loop' or 'reflect', got {default_mode!r}")
    # to_jshtml caches its first result on the animation, whatever mode was asked for: drop the cache
    if hasattr(anim, "_html_representation"):
        del anim._html_representation
    with plt.rc_context({"animation.embed_limit": max_bytes / 2**20}):
        html = anim.to_jshtml(default_mode=default_mode)
    html = re.sub(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">', "", html)
    for cls, shapes in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', _SVG.format(shapes))
    html = html.replace('class="anim-slider"', f'class="anim-slider" aria-label="{SLIDER_LABEL}"', 1)
    html = html.replace('<div class="animation">', _PLAYER_STYLE + '<div class="animation">', 1)
    if alt:
        escaped = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        html = re.sub(r'<img id="(_anim_img[0-9a-f]+)">', rf'<img id="\1" alt="{escaped}">', html, count=1)
    n_frames = html.count("data:image/png;base64")
    expected = getattr(anim, "frame_count", n_frames)
    if len(html.encode()) > max_bytes or n_frames < expected:
        raise ValueError(
            f"the animation is {len(html.encode()) / 1e6:.2f} MB with {n_frames} of {expected} frames; the limit is "
            f"{max_bytes / 1e6:.2f} MB: use fewer frames, a smaller figure or a lower dpi"
        )
    return html


def show_animation(anim: mpl_animation.FuncAnimation, **kwargs):
    """Display ``anim`` as a JavaScript player in a notebook (see :func:`animation_html`)."""
    from IPython.display import HTML

    return HTML(animation_html(anim, **kwargs))


def _check_overlap(counts, expected_shape, in_size) -> torch.Tensor:
    if not isinstance(counts, torch.Tensor):
        raise TypeError(f"the overlap function must return a tensor, got {type(counts).__name__}")
    if tuple(counts.shape) != tuple(expected_shape):
        raise ValueError(
            f"the overlap function returned shape {tuple(counts.shape)} for a {in_size[0]}x{in_size[1]} input, "
            f"but the transposed convolution's output is {expected_shape[0]}x{expected_shape[1]}"
        )
    return counts


def draw_transposed_conv(overlap_fn: Callable, kernel_size: int = 3, stride: int = 2, padding: int = 0,
                         output_padding: int = 0, in_size=(4, 4), seed: int = 0, axes=None):
    """Draw the input, the output of a transposed convolution with a ``kernel_size`` square kernel
    of ones, and ``overlap_fn(in_size, kernel_size, stride, padding, output_padding)``: the number
    of kernel copies that land on every output pixel. Returns the figure, or a message string if the
    combination is invalid (PyTorch needs ``output_padding < stride`` and a positive output size)."""
    if output_padding >= stride:
        return f"output padding must be smaller than the stride ({output_padding} >= {stride})"
    h, w = in_size
    out_h = (h - 1) * stride - 2 * padding + kernel_size + output_padding
    out_w = (w - 1) * stride - 2 * padding + kernel_size + output_padding
    if out_h < 1 or out_w < 1:
        return f"padding {padding} crops the whole {out_h + 2 * padding}-pixel output away"
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 4, (1, 1, h, w), generator=g).double()
    y = F.conv_transpose2d(x, torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64), stride=stride,
                           padding=padding, output_padding=output_padding)[0, 0]
    counts = _check_overlap(overlap_fn(tuple(in_size), kernel_size, stride, padding, output_padding), y.shape, in_size)
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), gridspec_kw=dict(width_ratios=[w, out_w, out_w]))
    else:
        fig = axes[0].figure
    panels = [(x[0, 0], "input", "cividis"), (y, f"output {out_h}x{out_w}", "cividis"),
              (counts, "kernel copies per pixel", "viridis")]
    for ax, (img, title, cmap) in zip(axes, panels):
        img = torch.as_tensor(img).double().numpy()
        ax.imshow(img, cmap=cmap, vmin=0, vmax=max(float(img.max()), 1.0))
        if img.size <= 400:
            _annotate(ax, img, "g", max(float(img.max()), 1.0))
        _grid(ax, img.shape, title)
    fig.suptitle(f"kernel {kernel_size}, stride {stride}, padding {padding}, output padding {output_padding}", fontsize=10)
    fig.tight_layout()
    return fig


def transposed_conv_explorer(overlap_fn: Callable, in_size=(4, 4)):
    """An ipywidgets explorer: sliders for kernel size, stride, padding and output padding redraw
    :func:`draw_transposed_conv` with ``overlap_fn``. Returns the widget (display it); building it
    draws once and never waits for input, so it runs headless (nbval, the autograder)."""
    import ipywidgets as widgets
    from IPython.display import display

    def slider(**kw):  # the label is read whole (the default width cuts "output padding" short)
        return widgets.IntSlider(style={"description_width": "initial"}, layout=widgets.Layout(width="260px"), **kw)

    sliders = dict(
        kernel_size=slider(value=3, min=1, max=6, description="kernel"),
        stride=slider(value=2, min=1, max=4, description="stride"),
        padding=slider(value=0, min=0, max=3, description="padding"),
        output_padding=slider(value=0, min=0, max=3, description="output padding"),
    )
    out = widgets.Output()

    def redraw(**params):
        with out:
            out.clear_output(wait=True)
            try:
                result = draw_transposed_conv(overlap_fn, in_size=in_size, **params)
            except Exception as error:  # an unfinished overlap function must not break the notebook
                plt.close("all")
                print(f"the overlap function failed for {params}: {type(error).__name__}: {error}")
                return
            if isinstance(result, str):
                print(result)
            else:
                display(result)
                plt.close(result)

    def on_change(_change=None):
        redraw(**{name: s.value for name, s in sliders.items()})

    for s in sliders.values():
        s.observe(on_change, names="value")
    on_change()
    return widgets.VBox([widgets.HBox(list(sliders.values())[:2]), widgets.HBox(list(sliders.values())[2:]), out])
