"""``clf-split``: the thin click layer over :func:`clfkit.data.make_split.make_split`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from clfkit.cli.common import CONTEXT, user_errors

__all__ = ["split_cmd"]


@click.command("clf-split", context_settings=CONTEXT)
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path), default=Path("data"))
@click.option("--val", default=0.15, show_default=True, help="Fraction of each class for validation.")
@click.option("--test", default=0.15, show_default=True, help="Fraction of each class for the test split.")
@click.option("--seed", default=0, show_default=True, help="Random seed; same seed and files → same split.")
@click.option("--min-images", default=1, show_default=True, help="Drop classes with fewer readable images.")
@click.option("--mode", type=click.Choice(["hardlink", "copy", "symlink"]), default="hardlink", show_default=True,
              help="How files get into DST (hardlinks fall back to copies across filesystems).")
@click.option("--overwrite", is_flag=True, help="Replace a previous split in DST.")
@click.option("--workers", type=int, default=None, help="Threads for hashing and decoding.")
@click.option("--near-duplicates/--no-near-duplicates", default=True, show_default=True,
              help="Keep near-identical photos of a class (re-encoded, recropped, recoloured copies, repeat "
                   "shots) on one side of the split; off: only byte-identical files are kept together.")
@user_errors
def split_cmd(src: Path, dst: Path, val: float, test: float, seed: int, min_images: int, mode: str,
              overwrite: bool, workers: int | None, near_duplicates: bool) -> None:
    """Split SRC/<class>/*.jpg into DST/{train,val,test}/<class>/ with a manifest (DST defaults to data/).

    Stratified per class and seeded; identical files and near-duplicates never straddle splits (the groups
    are listed in DST/split.json); unreadable files are listed in DST/quarantine.csv instead of copied.
    """
    from tqdm.auto import tqdm

    from clfkit.data.make_split import format_summary, make_split

    def log(msg: str) -> None:  # one line per quarantined file, written above the progress bar
        tqdm.write(msg, file=sys.stderr)

    result = make_split(src, dst, val=val, test=test, seed=seed, min_images=min_images, mode=mode,
                        overwrite=overwrite, workers=workers, log=log, near_duplicates=near_duplicates)
    click.echo(format_summary(result))
    click.echo(f"split written to {dst} (manifest: {dst / 'manifest.csv'})")
