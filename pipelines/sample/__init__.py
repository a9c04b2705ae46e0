"""Seeded, vectorized sample landing data for Acme Savings, with planted effects and planted defects.

`generate.generate_sample` writes what the four feeds would deliver (docs/contracts.md, "Landing files")
for a window of landing days, plus two answer keys under `_truth/`:

- `planted_truth.json`: the relative effect planted for each campaign on its goal's metric;
- `defect_plan.json`: the exact number of rows carrying each planted defect, per landing day.

Two phases, timed apart. Generating draws every row, effect and defect as numpy arrays (loops run
over days, sources and campaigns, never over rows). Writing renders those arrays as text (ids, ISO
timestamps, JSON) with polars and writes the files. Every draw comes from a stream keyed by
(seed, purpose[, day]), so the same arguments write the same bytes.

Modules, in the order a sample is made: `spec` (parameters, random streams, clock), `population`,
`effects` (planted effects and arms), `behaviour` (events), `transactions`, `profiles` (and erasure
requests), `defects`, `rendering` (landing files, with `pii`), `answer_keys`; `generate` composes them.
Only the command line, the tests and the benchmarks import this package; the pipeline never does.
"""
