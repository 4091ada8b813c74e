"""Plots: masks with a legend, training curves, graphs of layers and of scalar units with their
messages, digit sequences, reliability diagrams, and the transposed-convolution player. The
chapters' diagrams of whole designs live in their own modules, imported from there:
``designs`` (chapter 2: sliding window, encoder-decoder, FCN) and ``architectures`` (chapter 4:
FCN skips, SegNet-style unpooling, U-Net)."""

from .curves import plot_curves
from .graphs import draw_dag
from .masks import PALETTE, label_regions, legend_handles, mask_cmap, show_mask, show_scenes
from .reliability import reliability_diagram
from .sequences import plot_transitions, show_digit_sequences

__all__ = ["plot_curves", "draw_dag", "PALETTE", "label_regions", "legend_handles", "mask_cmap", "show_mask", "show_scenes",
           "reliability_diagram", "plot_transitions", "show_digit_sequences"]
