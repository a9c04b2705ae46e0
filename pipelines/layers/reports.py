"""Reports: the day's scorecard, a static HTML page under `reports/scorecard/` (assets/scorecard.py)."""

import dagster as dg

from assets import scorecard
from assets.pyramid_map import PyramidMap
from pipelines.layers import partition_day
from pipelines.layers.quality import blocked_for_day
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    touchpoints = [f"touchpoint_{tp.id}" for tp in pyramid_map.touchpoints]

    @dg.asset(
        name="scorecard",
        group_name="reports",
        partitions_def=partitions,
        kinds={"html"},
        deps=["north_star_series", "goal_metrics", "segment_summary", "campaign_audiences", *touchpoints],
        description="The scorecard: the pyramid, segments, campaigns, goals, the North Star and data quality "
        "on one static page with inline charts (reports/scorecard/<ds>.html; index.html = latest).",
    )
    @each_day
    def scorecard_report(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        blocked = blocked_for_day(lake, pmap, ds)
        causes = [
            (kind[:-1], item, "; ".join(why))
            for kind in ("segments", "campaigns", "goals", "metrics")
            for item, why in getattr(blocked, kind).items()
        ]
        card = scorecard.gather(lake, pmap, ds, causes)
        path = scorecard.write(lake, card)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "url": dg.MetadataValue.url(path.as_uri()),
                **scorecard.metadata(card),
            }
        )

    return [scorecard_report]
