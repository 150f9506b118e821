"""Alembic migrations of the volkeeper database (env.py and versions/). Shipped as a
package so installed copies (not only editable checkouts) can migrate on start."""
