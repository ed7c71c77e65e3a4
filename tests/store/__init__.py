"""Tests of the collection stores against their real backends."""
