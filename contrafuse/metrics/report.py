"""Writing metric results: CSV (one row per image, then mean and std rows) or JSON, atomically,
with the convention behind every column recorded."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..io import check_output_free, write_text_atomic


def write_results(path, rows, mean, std, metrics, convention, used, *, fmt=None, overwrite=False) -> Path:
    """``rows``: dicts with ``image`` and one value per metric. The CSV's last column,
    ``convention``, names the convention and any metric computed under another one."""
    path = Path(path)
    fmt = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    check_output_free(path, overwrite=overwrite)
    fallback = sorted(m for m, c in used.items() if c != convention)
    note = convention + (f"; {', '.join(fallback)} as standard" if fallback else "")
    if fmt == "json":
        payload = {"convention": convention, "definitions": used, "metrics": list(metrics),
                   "images": rows, "mean": mean, "std": std}
        write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")
        return path
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", *metrics, "convention"])
    for row in rows:
        writer.writerow([row["image"], *(repr(float(row[m])) for m in metrics), note])
    writer.writerow(["mean", *(repr(mean[m]) for m in metrics), note])
    writer.writerow(["std", *(repr(std[m]) for m in metrics), note])
    write_text_atomic(path, buffer.getvalue())
    return path

