"""`lamina ui`: a local web page that draws the store as the tutorials draw it (issue 14).

`views` holds the JSON endpoints (plain functions of a System and the query, no HTTP),
so the Engine API service can serve them too; `server` is the token-guarded local
HTTP server that serves them with the static page in `static/` (no build step, no CDN).
"""
