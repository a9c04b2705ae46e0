"""Pure transforms of the Personalization Pyramid, one module per layer.

Nothing in this package imports Dagster: each layer is plain functions over DuckDB relations,
Polars frames and Arrow tables, so it can be tested and reused without the orchestrator.
The Dagster wiring lives in `pipelines/`.
"""
