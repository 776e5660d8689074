"""Web apps: the public unsubscribe and web-view app (public.py)."""
