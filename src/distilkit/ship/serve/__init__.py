"""Serve a student (and its teacher) over HTTP: FastAPI app, micro-batching, and the side-by-side demo page."""
