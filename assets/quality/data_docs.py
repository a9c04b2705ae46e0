"""Data Docs: validation results rendered as a GX Data Docs site in a folder of the caller's choosing,
with an in-memory (ephemeral) GX context: nothing is written outside that folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from assets.privacy import is_private
from assets.quality.outcome import UNEXPECTED_VALUE_KEYS, QualityError, ValidationOutcome
from assets.quality.suites import Suite
from assets.quality.typed_batch import base_column

if TYPE_CHECKING:  # pragma: no cover - typing only
    from great_expectations.core import ExpectationSuiteValidationResult
    from upath import UPath


def build_data_docs(
    results: Iterable[ValidationOutcome | ExpectationSuiteValidationResult],
    site_dir: str | Path | UPath,
    suites: Iterable[Suite] = (),
    pii: Iterable[str] = (),
) -> Path | UPath:
    """Render the validation results (and, if given, the suites) as a GX Data Docs site in `site_dir`
    and return its index.html. Uses a fresh in-memory GX context: nothing is written elsewhere.
    Unexpected values of id and PII (`pii`) columns are dropped first (`strip_private_values`)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if not isinstance(site_dir, str | Path):  # an object store: GX writes a local folder, uploaded page by page
        with tempfile.TemporaryDirectory(prefix="pyramid-data-docs-") as folder:
            build_data_docs(results, folder, suites, pii)
            site_dir.fs.put(f"{folder}/", f"{site_dir.path}/", recursive=True)
        return site_dir / "index.html"
    site_dir = Path(site_dir).resolve()
    site_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site_name = "pyramid_quality"
    context.add_data_docs_site(
        site_name,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    for suite in suites:
        context.suites.add_or_update(gx.ExpectationSuite(**suite.to_json_dict()))  # a copy: a suite has one context
    for item in results:
        result = strip_private_values(item.gx_result if isinstance(item, ValidationOutcome) else item, pii)
        run_id = result.meta.get("run_id")
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=run_id,
            batch_identifier=result.batch_id or "batch",
        )
        context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=[site_name])
    index = site_dir / "index.html"
    if not index.is_file():
        raise QualityError(f"GX did not write {index}")
    return index


def strip_private_values(
    result: ExpectationSuiteValidationResult, pii: Iterable[str] = ()
) -> ExpectationSuiteValidationResult:
    """Drop, in place, the unexpected values GX kept for an expectation on an id or PII column (results
    saved before validation masked them)."""
    pii = tuple(pii)
    for item in result.results:
        kwargs = item.expectation_config.kwargs
        columns = [kwargs.get("column"), *(kwargs.get("column_list") or [])]
        if item.result and any(c and is_private(base_column(c) or c, pii) for c in columns):
            for key in UNEXPECTED_VALUE_KEYS:
                item.result.pop(key, None)
    return result
