"""The Prometheus room: the HTTP API client and the only module that spells PromQL
(:mod:`.queries`). Everything the estimator knows about the TSDB enters through here."""
