"""The web front: family pages, the JSON API, templates and static files.

Thin by design: it parses requests, calls the domain in ``visits``, and renders the result.
"""
