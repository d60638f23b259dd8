"""prometheus_client custom collectors, one per source.

Each collector renders the sampler's latest :class:`~joulecast.exporter.sampler.NodeSnapshot` (or the
job registry) into fresh metric families on every scrape; nothing mutates module-level
gauges. :class:`~joulecast.exporter.collectors.base.ScrapeCollector` runs them and adds, per
collector, ``joulecast_scrape_collector_success`` and ``..._duration_seconds``: one failing
collector never fails the scrape.
"""
