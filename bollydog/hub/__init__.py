"""Dispatch machinery: middleware layers, async-generator orchestration, the transport port."""
