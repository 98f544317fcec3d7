"""The story domain: models, graph, viewer state, formats. Pure: no I/O beyond parsing text."""
