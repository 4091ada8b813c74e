"""The transposed-convolution animation (chapter 3) and the lab's overlap explorer.

The animation's last frame must be PyTorch's transposed convolution, the page it produces must stay
small and self-contained, and its buttons must really change the frame: the player's JavaScript is
run under node with a minimal stand-in for the browser's DOM, and its buttons are clicked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F

from course_utils.plotting.animation import (
    animation_html,
    draw_transposed_conv,
    transposed_conv_animation,
    transposed_conv_explorer,
    transposed_conv_partial_sums,
)


def reference_overlap(in_size, kernel_size, stride, padding, output_padding):
    """Count kernel copies per output pixel by brute force (independent of conv_transpose2d)."""
    h, w = in_size
    full_h = (h - 1) * stride + kernel_size + output_padding
    full_w = (w - 1) * stride + kernel_size + output_padding
    counts = torch.zeros(full_h, full_w, dtype=torch.int64)
    for i in range(h):
        for j in range(w):
            counts[i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size] += 1
    out_h, out_w = full_h - 2 * padding, full_w - 2 * padding
    return counts[padding:padding + out_h, padding:padding + out_w]


@pytest.fixture(scope="module")
def small_html():
    anim = transposed_conv_animation(torch.arange(1.0, 5.0).view(2, 2), torch.ones(2, 2), stride=2, dpi=40)
    return anim, animation_html(anim)


def test_partial_sums_end_at_torch_transposed_convolution():
    g = torch.Generator().manual_seed(0)
    x, k = torch.randn(3, 4, generator=g), torch.randn(3, 2, generator=g)
    for stride, padding in [(1, 0), (2, 0), (2, 1), (3, 1)]:
        sums = transposed_conv_partial_sums(x, k, stride, padding)
        assert len(sums) == x.numel() + 1
        assert torch.count_nonzero(sums[0]) == 0
        ref = F.conv_transpose2d(x.double()[None, None], k.double()[None, None], stride=stride, padding=padding)[0, 0]
        torch.testing.assert_close(sums[-1], ref)
        if padding == 0:  # nothing is cropped: step t adds exactly one copy of the kernel, at (i s, j s)
            for t, (a, b) in enumerate(zip(sums, sums[1:])):
                i, j = divmod(t, x.shape[1])
                expected = torch.zeros_like(a)
                expected[i * stride:i * stride + 3, j * stride:j * stride + 2] = x[i, j].double() * k.double()
                torch.testing.assert_close(b - a, expected)


def test_animation_html_is_small_self_contained_and_plays_once(small_html):
    anim, html = small_html
    assert html.count("data:image/png;base64") == anim.frame_count
    assert len(html.encode()) < 1_500_000
    assert "font-awesome" not in html and "https://" not in html, "the player must not load anything from the web"
    assert re.search(r'value="once"[^>]*\s+checked', html), "the player should start in 'once' mode"
    described = animation_html(anim, alt='a "copy" & <sum>')
    assert re.search(r'<img id="_anim_img[0-9a-f]+" alt="a &quot;copy&quot; &amp; &lt;sum>">', described)


def test_player_controls_have_labels_and_draw_their_icons_without_a_font(small_html):
    _anim, html = small_html
    assert re.search(r'<input id="_anim_slider[0-9a-f]+" type="range" class="anim-slider" aria-label="[^"]+"', html), \
        "the slider needs a label for screen readers"
    buttons = re.findall(r"<button ([^>]*)>(.*?)</button>", html, re.S)
    assert len(buttons) == 9
    for attrs, inside in buttons:
        assert re.search(r'aria-label="[^"]+"', attrs), attrs
        # a symbol from a font shows as an empty box where no installed font has it: an inline SVG needs none
        assert re.fullmatch(r'\s*<svg [^>]*aria-hidden="true"[^>]*>(<(path|rect) [^>]*/>)+</svg>\s*', inside), inside
        assert inside.isascii()
    assert "<i class=" not in html, "a Font Awesome icon is left"
    assert "max-width: 100%" in html and "flex-wrap: wrap" in html, "the controls must shrink and wrap on a phone"


def test_default_animation_has_a_frame_per_input_pixel_and_fits_in_a_page():
    anim = transposed_conv_animation()
    html = animation_html(anim)
    assert anim.frame_count == 10  # the empty start and one frame per pixel of the 3x3 input
    assert html.count("data:image/png;base64") == 10
    assert len(html.encode()) < 600_000


def test_animation_html_refuses_to_drop_frames():
    anim = transposed_conv_animation(dpi=40)
    with pytest.raises(ValueError, match="MB"):
        animation_html(anim, max_bytes=20_000)


NODE_HARNESS = r"""
const fs = require('fs');
const html = fs.readFileSync(process.argv[2], 'utf8');
const elements = {};
function element(id) {
  if (!elements[id]) {
    elements[id] = {id: id, src: '', value: '0', max: 0, attrs: {},
      getAttribute(k) { return this.attrs[k] || null; }, setAttribute(k, v) { this.attrs[k] = v; }};
  }
  return elements[id];
}
const document = {getElementById: element};
const loop = html.match(/name="(_anim_loop_select[^"]+)"/)[1];
document[loop] = {state: [{value: 'once', checked: true}, {value: 'loop', checked: false},
                          {value: 'reflect', checked: false}]};
const navigator = {userAgent: 'node'};
function Image() { this.src = ''; }
let timers = [];
function setInterval(fn, ms) { timers.push(fn); return timers.length; }
function clearInterval(id) { timers[id - 1] = null; }
function setTimeout(fn, ms) { fn(); }  // the player creates itself in a zero-delay timeout
const scripts = [...html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map(m => m[1]);
const buttons = {};
for (const m of html.matchAll(/<button title="([^"]+)"[^>]*onclick="([^"]+)"/g)) buttons[m[1]] = m[2];
const img = html.match(/<img id="([^"]+)"/)[1];
const slider = html.match(/<input id="([^"]+)" type="range"/)[1];
eval(scripts.join(';\n'));
const frame = () => element(img).src;
const log = {start: frame(), buttons: Object.keys(buttons)};
const anim = buttons['Next frame'].split('.')[0];
eval(buttons['Next frame']); log.next = frame();
eval(buttons['Next frame']); log.next2 = frame();
eval(buttons['Previous frame']); log.previous = frame();
eval(buttons['Last frame']); log.last = frame();
eval(buttons['First frame']); log.first = frame();
eval(buttons['Play']);
log.timers = timers.filter(Boolean).length;
for (let t = 0; t < 50; t++) timers.filter(Boolean).forEach(fn => fn());
log.played = frame();
log.frames = eval(anim + '.frames.length');
log.slider_max = element(slider).max;
process.stdout.write(JSON.stringify(log));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_player_buttons_change_the_frame(small_html, tmp_path):
    anim, html = small_html
    page, harness = tmp_path / "anim.html", tmp_path / "harness.js"
    page.write_text(html)
    harness.write_text(NODE_HARNESS)
    result = subprocess.run(["node", str(harness), str(page)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    log = json.loads(result.stdout)
    frames = re.findall(r'frames\[\d+\] = "(data:image/png;base64,[^"]*)"', html)
    frames = [f.replace("\\\n", "") for f in frames]
    assert log["frames"] == anim.frame_count and log["slider_max"] == anim.frame_count - 1
    assert {"Play", "Pause", "Next frame", "Previous frame", "First frame", "Last frame"} <= set(log["buttons"])
    assert log["start"] == frames[0]
    assert log["next"] == frames[1] and log["next2"] == frames[2], "'Next frame' must step forward"
    assert log["previous"] == frames[1], "'Previous frame' must step back"
    assert log["last"] == frames[-1] and log["first"] == frames[0]
    assert log["timers"] == 1 and log["played"] == frames[-1], "'Play' must run to the last frame and stop"


def test_draw_transposed_conv_uses_the_given_overlap_function():
    import matplotlib.pyplot as plt

    fig = draw_transposed_conv(reference_overlap, kernel_size=3, stride=2, padding=1, output_padding=1)
    assert len(fig.axes) == 3
    counts = fig.axes[2].images[0].get_array()
    torch.testing.assert_close(torch.as_tensor(counts.data).long(), reference_overlap((4, 4), 3, 2, 1, 1))
    plt.close(fig)


def test_draw_transposed_conv_explains_invalid_settings_and_wrong_shapes():
    assert "smaller than the stride" in draw_transposed_conv(reference_overlap, 3, stride=2, output_padding=2)
    assert "crops" in draw_transposed_conv(reference_overlap, 1, stride=1, padding=3, in_size=(2, 2))
    with pytest.raises(ValueError, match="output is 9x9"):
        draw_transposed_conv(lambda *a: torch.zeros(3, 3), 3, stride=2)


def test_explorer_builds_headless_and_redraws_on_slider_change():
    import ipywidgets as widgets

    calls = []

    def counting(*args):
        calls.append(args)
        return reference_overlap(*args)

    box = transposed_conv_explorer(counting)
    assert isinstance(box, widgets.VBox)
    assert calls == [((4, 4), 3, 2, 0, 0)]
    sliders = [w for row in box.children[:2] for w in row.children]
    sliders[1].value = 3  # the stride
    assert calls[-1] == ((4, 4), 3, 3, 0, 0)


def test_explorer_sliders_show_their_whole_labels():
    box = transposed_conv_explorer(reference_overlap)
    sliders = [w for row in box.children[:2] for w in row.children]
    assert [s.description for s in sliders] == ["kernel", "stride", "padding", "output padding"]
    # "initial" sizes the label to its text; ipywidgets' default cuts long ones ("out. paddi...")
    assert {s.style.description_width for s in sliders} == {"initial"}


def test_show_animation_wraps_the_player_for_a_notebook(small_html):
    from IPython.display import HTML

    from course_utils.plotting.animation import show_animation

    anim, _ = small_html
    shown = show_animation(anim, default_mode="loop")
    assert isinstance(shown, HTML) and "new Animation" in shown.data
    assert re.search(r'value="loop"[^>]*\s+checked', shown.data)
    with pytest.raises(ValueError, match="default_mode"):
        show_animation(anim, default_mode="bounce")
