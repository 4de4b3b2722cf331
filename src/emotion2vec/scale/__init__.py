"""Scale-out engines beyond one process (``--shard`` is in :mod:`emotion2vec.shards`).

:mod:`.ray_engine`: extract / predict as a streaming Ray Data pipeline over a machine or a
cluster (the ``ray`` extra); :mod:`.parquet`: its Parquet output, written in atomic parts.
"""
