"""Tooling for maintainers and instructors of the course: the autograder (``grading``), the book's
Sphinx extension and the notebook tools. Students never install it; ``course_utils`` is what the
notebooks import."""

import os
from pathlib import Path

# the repository this tooling works on: where labs/, _assign/ and _grades/ live
REPO = Path(os.environ.get("COURSE_REPO") or Path(__file__).resolve().parents[2])
