"""Mozilla's Common Voice download as a local set: the `metadata.csv` that makes its locale folder an audiofolder.

    python -m kdlib.corpus.common_voice data/common_voice_15_0/ar [--split test]

A Common Voice release (`cv-corpus-15.0-<date>/ar/`, from Mozilla's Data Collective now that the hub copy is
reported removed) holds `clips/*.mp3` and one TSV per split (`test.tsv`: `client_id`, `path`, `sentence`,
votes, age, gender, …; no quoting: a sentence may hold a `"`). kdlib's local sets are audiofolders
(`kdlib.corpus.preparation.read_audiofolder`): a `metadata.csv` whose `file_name` names each audio file relative
to the folder. This writes `<folder>/metadata.csv` from `<folder>/<split>.tsv` with the columns kdlib needs:
`file_name` (`clips/<path>`), `sentence` (the reference: `text_column: sentence`) and `path` (the clip's id:
`id_column: path`, as the hub copy's ids), the rows in the TSV's order. `params/paper-public.yaml` reads it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

COLUMNS = ("file_name", "sentence", "path")


def write_metadata(folder: str | Path, split: str = "test") -> tuple[Path, int, int]:
    """Write `<folder>/metadata.csv` from `<folder>/<split>.tsv`; return its path, its rows and how many of the
    clips it names are missing from `<folder>/clips/`. A ValueError (one line) when the TSV is missing or lacks
    `path` or `sentence`."""
    folder = Path(folder)
    source = folder / f"{split}.tsv"
    if not source.is_file():
        raise ValueError(f"no {source}: point at the locale folder of a Common Voice download (it holds {split}.tsv)")
    table = pd.read_csv(source, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    missing = [column for column in ("path", "sentence") if column not in table.columns]
    if missing:
        raise ValueError(f"{source} has no column {', '.join(missing)} (found {list(table.columns)})")
    metadata = pd.DataFrame(
        {"file_name": "clips/" + table["path"], "sentence": table["sentence"], "path": table["path"]},
        columns=list(COLUMNS),
    )
    target = folder / "metadata.csv"
    metadata.to_csv(target, index=False, encoding="utf-8")
    absent = sum(not (folder / name).is_file() for name in metadata["file_name"])
    return target, len(metadata), absent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.corpus.common_voice", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the locale folder of a Common Voice download, e.g. .../ar")
    parser.add_argument("--split", default="test", help="the split's TSV to read (default: test)")
    args = parser.parse_args(argv)
    try:
        target, rows, absent = write_metadata(args.folder, args.split)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    note = f"; {absent} of its clips are not in clips/ (they will be skipped as 'missing')" if absent else ""
    print(f"{target}: {rows} clips{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
