"""Metrics: segmentation scores from a confusion matrix, image quality (PSNR, checkerboards) and
calibration bins."""

from .calibration import calibration_bins, confidence_and_correct
from .image_quality import checkerboard_score, phase_means, psnr
from .segmentation import boundary_f1, confusion_matrix, scores_from_confusion

__all__ = ["calibration_bins", "confidence_and_correct", "checkerboard_score", "phase_means", "psnr", "boundary_f1", "confusion_matrix", "scores_from_confusion"]
