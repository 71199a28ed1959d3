"""Network scanning: discovery, ports, services, paths."""
