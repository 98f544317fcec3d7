"""Redis: the crash-safe job queue, cross-process events, and the name of every key."""
