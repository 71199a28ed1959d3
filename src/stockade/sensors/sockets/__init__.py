"""The local socket table: what listens and what is connected."""
