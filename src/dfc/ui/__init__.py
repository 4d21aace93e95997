"""``dfc ui``: the web dashboard (Starlette + Jinja2, htmx vendored under ``static/``).

Install with the ``ui`` extra (``pip install 'dfc[ui]'``); `dfc.ui.app.create_app` builds the
application.
"""
