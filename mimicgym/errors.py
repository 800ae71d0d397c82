"""The project's documented exceptions: every user error is a :class:`MimicgymError`.

They subclass ``ValueError``, so code written against the library's earlier ``ValueError``
contract keeps working; the CLI prints any of them as one line and exits with status 2.
"""

from __future__ import annotations


class MimicgymError(ValueError):
    """Base of every error the project raises for bad input: a file, an option, a value."""


class ConfigError(MimicgymError):
    """A run option, hyperparameter, env keyword or config file that cannot be used as given."""


class CheckpointError(MimicgymError):
    """A saved agent, model or run directory that cannot be read back (missing, foreign, corrupt)."""


class MapError(MimicgymError):
    """A gridworld map or gridworld option that does not describe a valid grid."""


class MotionFileError(MimicgymError):
    """A motion file (BVH, DeepMimic, npz clip, AMASS) that is malformed, truncated or out of bounds."""


class ModelFileError(MimicgymError):
    """A body-model file that is malformed, truncated, or holds arrays no real body model has."""
