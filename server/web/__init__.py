"""The web layer: the FastAPI application, its routers, and the play protocol."""
