"""Dovecote: self-hosted private messaging, wire-compatible with SelfCommunity's PM API v2."""

__version__ = "0.1.0"
