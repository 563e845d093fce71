"""Per-image work units, one module per command.

Each is a top-level function over one picklable argument tuple, so it runs the same in this process, in a local
worker process or on a Dask worker.  It reads its inputs, calls the pure functions, and writes its outputs through
:mod:`dsprep.outputs`; the returned value is a small dict of counts for the summary.
"""
