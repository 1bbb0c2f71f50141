"""Formal PDF letters: the plain-data contract, the context built from the database, the
sandboxed renderer, the documents table, the render job and the /verify page."""
