"""The data flywheel's serving side: an OpenAI-compatible gateway that logs every request to an inference table.

    app.py      create_app(): endpoints, the order of checks, SSE, OpenAPI
    batcher.py  dynamic batching of concurrent requests onto one generate() call
    host.py     the served model, the ``current.json`` pointer and hot swaps
    log.py      the inference table: fsync'd WAL compacted into Parquet parts (+ optional Delta Lake sink)
    keys.py     hashed API keys and per-key rate limits
    redact.py   optional PII redaction before rows are written
    metrics.py  Prometheus text metrics
    testing.py  serve_in_thread(app) → base URL, for tests and scripts
"""
