"""Image operations: windows around pixels (the sliding-window labeler) and blobs (connected
components, for counting by localization)."""

from .blobs import count_blobs, label_blobs, points_per_blob, split_boundaries
from .sliding_window import check_window, extract_windows, pad_for_window, sample_windows, sliding_window_scores, windows_at

__all__ = ["count_blobs", "label_blobs", "points_per_blob", "split_boundaries", "check_window", "extract_windows",
           "pad_for_window", "sample_windows", "sliding_window_scores", "windows_at"]
