"""The names ``--head`` accepts, importable without torch (the CLI and TrainConfig validate with them)."""

__all__ = ["HEADS"]

HEADS = ("linear", "mlp")  # see clfkit.models.classifier.create_head
