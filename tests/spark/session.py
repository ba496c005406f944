"""One local SparkSession with Delta Lake, its Maven packages cached outside the repo.

``delta-spark``'s jars come from Maven Central through Spark's own resolver (Ivy), cached
under ``${SPANLAKE_CACHE:-~/.cache/spanlake}/ivy`` so a machine resolves them once. Run as
a script (``python tests/spark/session.py``) it only resolves and starts Spark once: what
``.ci/run`` calls before the tests, so a resolution failure fails CI early and loudly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def ivy_dir() -> Path:
    root = os.environ.get("SPANLAKE_CACHE") or str(Path.home() / ".cache" / "spanlake")
    return Path(root) / "ivy"


def start_spark(app: str = "spanlake-tests") -> Any:
    """A local[2] session reading Delta tables (configure_spark_with_delta_pip pins the
    delta-spark jars matching the installed Python package)."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    ivy = ivy_dir()
    ivy.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.appName(app)
        .master("local[2]")
        .config("spark.jars.ivy", str(ivy))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
    )
    return configure_spark_with_delta_pip(builder).getOrCreate()


if __name__ == "__main__":
    spark = start_spark("spanlake-spark-setup")
    print(f"spark {spark.version} with delta ready; ivy cache {ivy_dir()}", file=sys.stderr)
    spark.range(1).count()
    spark.stop()
