"""The HTTP API and the review page: the `api` process (`process`), the FastAPI app (`app`),
its routes per area (`routes/`), bearer-token auth (`auth`), the live event feed from the
publisher (`live`), and the static page (`static/`).

Routes are thin: they validate ids at the edge and call the same library and gallery
functions as the CLI; every gallery edit goes through the comment-keeping editor under its lock.
"""
