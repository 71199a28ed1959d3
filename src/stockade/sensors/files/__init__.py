"""File integrity sensor: walk the policy's trees, collect attributes, watch with inotify."""
