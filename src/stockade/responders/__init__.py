"""Responders act on alerts: ban in nftables, run a command, or only say what they would do.

Every responder is wrapped by the allowlist guard, which no ban can cross.
"""
