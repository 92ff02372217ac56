"""Helpers with no torch or OpenMMLab import: image reading, atomic file writes, the environment record."""
