"""Seeded generator of realistic 1280x720 station camera frames with ground truth.

See :mod:`checkpost.hardware.corpus.generate` for the manifest format and
:mod:`checkpost.hardware.corpus.scene` for how a frame is rendered.
"""

from .generate import make_corpus

__all__ = ["make_corpus"]
