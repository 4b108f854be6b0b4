"""Shared fixtures: the hand-written Amazon-M2 format sample copied from ../shared."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def m2_sample_dir() -> Path:
    """Folder with the format sample: quirks of the real KDD Cup files, a few rows each."""
    return FIXTURES
