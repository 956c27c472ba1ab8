"""Where the shared reference data lies (read in place, never copied into the repository).

A missing ``shared/`` folder is a broken checkout, not an optional feature: the tests that
need it fail with this message instead of being skipped silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CERTLOGIC = SHARED / "certlogic"
EU_RULES = SHARED / "eu-rules"
MISSING = "shared-data-missing"


def require(path: Path) -> Path:
    """``path`` if it exists, else fail the calling test with a clear message."""
    if not path.exists():
        pytest.fail(
            f"reference data not found: {path} (expected the shared folder beside the "
            f"repository, at {SHARED}); the rules tests read it in place",
            pytrace=False,
        )
    return path
