"""One pipeline for every code format a station reads: HC1, HP1, SR1, tube and box codes.

Start at `pipeline.Verifier`; `trust` holds the keys, `cose` and `base45` the envelope,
`claims` our own typed formats, `dcc` the EU certificate's schemas and key usage.
"""

from checkpost.codes.pipeline import STEPS, CodePatterns, Decoded, Verifier

__all__ = ["STEPS", "CodePatterns", "Decoded", "Verifier"]
