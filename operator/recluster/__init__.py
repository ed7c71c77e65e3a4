"""Recluster: a Kubernetes operator that keeps embedding collections clustered."""

__version__ = "0.1.0"
