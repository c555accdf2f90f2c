"""Readers for raw MD formats, chemistry tables and unit detection."""
