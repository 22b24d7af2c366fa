"""Unit tests of the media node audio core, on real signals through real soxr."""
