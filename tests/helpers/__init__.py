"""What several test modules share; conftest.py keeps the fixtures only.

    paths        REPO_ROOT, TEST_DATA, COCO_IMAGES
    cli          `wit` as a subprocess; what a one-line user error looks like
    curate       the COCO example config, its final shards, every stage's stats.json
    download     a fast fetch config; the raw shards' rows and members
    engines      Beam in this process and a folder's Parquet rows, for test_<stage>_engines.py
    rawshards    raw shards as download writes them, from real photos (and the dedup test's set)
    text         real LAION and COCO captions; a Source over a list of pairs
    training     real image-caption pairs for the trainer
    report_runs  real runs of every stage for the report's tests
    large_run    a synthesised large run (the report at scale)
    browser      headless Chromium over the DevTools protocol
    netproxy     an HTTPS image server and an HTTP proxy on loopback

The service processes the benchmarks start too (Beam's job service, a Spark cluster) and the
image servers are in wit_pipeline/testing/: bench/ cannot import tests/.
"""
