"""Data intake: folder scanning, the train/val/test split and (for training) datasets."""
