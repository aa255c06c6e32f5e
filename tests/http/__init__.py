"""
Tests of the HTTP layer: CloudServer, the ASGI and WSGI middleware.
"""
