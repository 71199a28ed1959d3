"""Baselines: signing and verifying them (the versions themselves live in the store)."""
