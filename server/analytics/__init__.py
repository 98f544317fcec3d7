"""Audience analytics: playback events kept in Redis, counters aggregated as they arrive, and the reports."""
