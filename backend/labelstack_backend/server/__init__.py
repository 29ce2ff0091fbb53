"""The HTTP server: Flask routes, the composition root, gunicorn's settings and the workers' board."""
