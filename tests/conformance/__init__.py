"""Conformance suite: lakehouse's reader against real Delta tables written by other engines."""
