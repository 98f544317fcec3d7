"""Wiring and real time: settings, Redis store, workers, the HTTP and websocket app, the CLI."""
