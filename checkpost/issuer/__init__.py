"""The test issuer: keys, a signed trust list, and minted HP1/SR1/tube/box codes.

For demos and tests only. Its keys are marked `demo` in the trust list it writes, and a
verifier refuses demo keys unless its configuration says `accept_demo = true`: a unit in the
field cannot be fooled by a pass minted with a key someone copied from a laptop.
"""

from checkpost.issuer.issuer import TestIssuer, mint

__all__ = ["TestIssuer", "mint"]
