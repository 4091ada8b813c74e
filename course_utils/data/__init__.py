"""Data sets of the course; all offline and deterministic from a seed."""

from .digit_scenes import CLASS_NAMES, NUM_CLASSES, DigitScenes, compose_scenes, digit_scenes, digit_split, handwritten_glyphs

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "DigitScenes", "compose_scenes", "digit_scenes", "digit_split", "handwritten_glyphs"]
