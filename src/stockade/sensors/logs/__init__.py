"""Log sources: files followed through rotation, and the systemd journal."""
