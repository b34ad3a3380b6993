"""Merging two duplicate contacts or companies into one, from a side-by-side screen."""
