"""The file integrity part: baseline, check, accept, versions, and the daemon's watcher."""
