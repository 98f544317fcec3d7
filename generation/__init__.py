"""Turns story into media: the scene writer (LLM) and the clip renderers. Knows nothing of websockets."""
