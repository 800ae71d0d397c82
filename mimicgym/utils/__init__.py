"""Helpers shared by every subpackage: atomic file writes, seeding, device selection."""

from mimicgym.utils.io import atomic_save_npz, atomic_write
from mimicgym.utils.seeding import make_rng

__all__ = ["atomic_write", "atomic_save_npz", "make_rng"]
