"""The HTTP edge: a FastAPI app for customers, stores, admins and orchestrators' probes."""
