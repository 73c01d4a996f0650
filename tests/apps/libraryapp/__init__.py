"""A small lending library whose config key (``library``) differs from its package name."""
