"""The logs part: jails that read logs, count failures and ban through the responders."""
