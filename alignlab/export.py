"""Every run's metrics as one table, for pandas users: ``alignlab runs --export csv|parquet``.

One row per logged metrics row of each run: ``run_id``, ``method``, ``step``, then ``time`` and every metric
key any run logged (TRL's names kept, the probe's ``probe/...`` too), empty where a row has no value for it.
Runs that cannot be read (see :func:`alignlab.rundir.read_run`) have no rows.

>>> import pandas  # doctest: +SKIP
>>> table = pandas.read_csv("runs.csv")  # doctest: +SKIP
>>> table[table.method == "dpo"].groupby("run_id")["loss"].last()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from alignlab.errors import AlignLabError
from alignlab.rundir import list_runs

EXPORT_FORMATS = ("csv", "parquet")
KEY_COLUMNS = ("run_id", "method", "step")


def metrics_table(output_dir: str | Path | None = None):
    """A pandas DataFrame of the metric rows of every run in ``output_dir`` (the lab's runs folder when None; newest
    run first, each run's rows in the order they were logged)."""
    import pandas

    records = [{"run_id": run["run_id"], "method": run["method"], **row}
               for run in list_runs(output_dir) for row in run["history"]]
    keys = dict.fromkeys(key for record in records for key in record)
    columns = [*KEY_COLUMNS, *(key for key in keys if key not in KEY_COLUMNS)]
    return pandas.DataFrame.from_records(records, columns=columns)


def export_metrics(output_dir: str | Path, fmt: str, out: str | Path | None = None) -> tuple[Path, int, int]:
    """Write :func:`metrics_table` as ``fmt`` (csv or parquet) to ``out`` (default ``runs.<fmt>`` in the
    current folder); returns the file, its number of rows and of runs. AlignLabError in one line for an
    unknown format, parquet without pyarrow, or a file that cannot be written."""
    if fmt not in EXPORT_FORMATS:
        raise AlignLabError(f"export: got {fmt!r}, expected one of {', '.join(EXPORT_FORMATS)}")
    path = Path(out if out is not None else f"runs.{fmt}").expanduser()
    if path.is_dir():
        raise AlignLabError(f"out: {str(path)!r} is a folder, expected a file path")
    table = metrics_table(output_dir)
    try:
        if fmt == "csv":
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
    except ImportError:
        raise AlignLabError("export: parquet needs pyarrow, which is not installed (pip install pyarrow)") from None
    except OSError as error:
        raise AlignLabError(f"out: cannot write {str(path)!r} ({error.strerror or error})") from None
    return path, len(table), table["run_id"].nunique()
