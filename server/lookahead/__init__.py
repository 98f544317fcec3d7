"""Rendering ahead of playback: the scheduling policy, its bookkeeping and budget, and the engine that runs it live."""
