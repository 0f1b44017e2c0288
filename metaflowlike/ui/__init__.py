"""``metaflowlike ui``: a read-only run browser over any datastore, one command away.

``reader`` turns the datastore into JSON-ready views (with caches of what never
changes), ``app`` serves them as a JSON API and a static page, ``cli`` starts it. The
web framework (Starlette, uvicorn) is the optional extra ``metaflowlike[ui]``: nothing
here is imported by ``import metaflowlike``.
"""
