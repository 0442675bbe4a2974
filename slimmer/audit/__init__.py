"""Audits of many images: a registry's storage or a directory of archives, each layer blob read
once (locally or on a Dask cluster), results kept in a database (SQLite or PostgreSQL) that
``slimmer audit --report`` answers from.

    run.py      one audit: tags -> manifests -> one scan per blob -> images -> analyze -> rows
    work.py     where the per-blob scans run: here, local processes, a Dask cluster
    db.py       the database: schema, numbered migrations, scans kept, image rows
    report.py   the questions asked of the database
    records.py  what is kept of one image

Ties the reader to the analyzer (as ``slimmer.fleet`` does), so neither imports the other.
"""
