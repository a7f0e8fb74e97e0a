"""The params vocabulary: typed sections with help texts and ranges, loading, overrides and validation."""

from kdlib.config.schema import *  # noqa: F403
