"""Data quality with Great Expectations 1.x: one expectation suite per raw source, run on a typed batch.

The suites are `expectations/<source>.json` (events, transactions, profiles), each exactly what GX's
`ExpectationSuite.to_json_dict()` writes, so GX tools read them and a person can edit them. Every
expectation says in its `meta` what a failure decides:

- `"decides": "row"` with a `"reason"` code (docs/contracts.md: missing_user_id, bad_timestamp, ...):
  a row-wise (map) expectation; every row it finds unexpected is refused with that reason. Several
  expectations may share a reason (e.g. `event_type` not null, and in the set). Its `mostly` (0.99 in
  the shipped suites) only decides whether its check passes: a spike of bad rows fails the check.
- `"decides": "column"`: a judgement on the batch as a whole, usually with `mostly` (share of nulls,
  a mean, a value set mostly met). It refuses no row; a failure withholds (severity `critical`) or
  flags (severity `warning`) the column.

Severity is GX's own top-level `"severity"` field of an expectation (`critical` or `warning`), not a
meta key: GX 1.24 has that field, renders it and uses it in `get_max_severity_failure()`, so a second
copy in meta could only disagree. `load_suite` refuses `meta.severity` with a message saying so.

The modules, each one concept (import them directly; this package re-exports nothing):

- `suites`: `Rule`, `Suite`, loading, checking and writing suite files, check names, `peek_rules`;
- `typed_batch`: `typed_frame` and the one typing (`column_sql` and its `*_sql` parts, shared with the
  actionable layer), `day_parameters` (a landing day's `$PARAMETER` values);
- `validation`: `validate_batch` / `validate_raw` (a raw partition, its file included, typed one column group
  at a time) in an in-memory GX context, saved results;
- `outcome`: `ValidationOutcome` (exact failing rows, column verdicts, per-expectation summaries),
  `withheld_columns`, `column_status_table`;
- `data_docs`: `build_data_docs`, a GX Data Docs site from saved results.

What a withheld column blocks upward is column use, not quality: `assets/lineage.py`.

`import great_expectations` takes seconds, so it happens inside the functions that validate or build
GX objects (and pandas with it): importing any of these modules costs nothing.
"""
