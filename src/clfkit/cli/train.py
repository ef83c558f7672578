"""``clf-train``: the thin click layer over :func:`clfkit.train.trainer.fit`.

Its options are made from :class:`~clfkit.train.config.TrainConfig`'s fields (name, default, help, choices),
so the CLI and the Python API cannot drift apart; TrainConfig validates the values and names the flag.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable

import click

from clfkit.cli.common import CONTEXT, user_errors
from clfkit.train.config import TrainConfig, option_help

__all__ = ["train_cmd", "config_options"]


def _click_type(annotation: Any) -> Any:
    """click's type for a field annotation such as ``int | None`` or ``Path | None``."""
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = kinds[0]
    return click.Path(path_type=Path) if kind is Path else kind


def config_options(cls: type) -> Callable[[Callable], Callable]:
    """Decorate a click command with one option per field of ``cls`` that carries option metadata."""
    hints = typing.get_type_hints(cls)

    def decorate(func: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            if "help" not in f.metadata:
                continue
            meta = f.metadata
            flag = meta.get("flag", "--" + f.name.replace("_", "-"))
            kwargs: dict[str, Any] = {"default": f.default, "help": option_help(f),
                                      "show_default": meta.get("show_default", f.default is not None)}
            if "choices" in meta:
                kwargs["type"] = click.Choice(meta["choices"])
            elif hints[f.name] is bool and "/" not in flag:
                kwargs["is_flag"] = True
            elif hints[f.name] is not bool:
                kwargs["type"] = _click_type(hints[f.name])
            func = click.option(flag, f.name, **kwargs)(func)
        return func

    return decorate


@click.command("clf-train", context_settings=CONTEXT)
@click.argument("data", type=click.Path(path_type=Path), default=TrainConfig.data)
@config_options(TrainConfig)
@user_errors
def train_cmd(data: Path, **options: Any) -> None:
    """Fine-tune an ImageNet backbone on DATA/{train,val[,test]}/<class>/ (what clf-split writes).

    Writes RUN_DIR/model.pt (with its preprocessing spec), history.csv, curves.png and, with a test split,
    report/ (metrics.json, confusion matrix, per-class figure).
    """
    from clfkit.train.summary import format_fit_summary
    from clfkit.train.trainer import fit

    result = fit(TrainConfig(data=data, **options), log=lambda msg: click.echo(msg, err=True))
    if result.files:  # rank 0 only under torchrun
        click.echo(format_fit_summary(result))
