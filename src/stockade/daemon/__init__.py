"""The daemon: one asyncio loop running every enabled part, supervised."""
