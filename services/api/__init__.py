"""The kiln HTTP server: the job and model services behind bearer-token auth, and the web page.

``create_app(settings)`` (app.py) builds it; ``serve(settings, host, port)`` (server.py) runs it.
"""
