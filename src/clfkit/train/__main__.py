"""``python -m clfkit.train`` = clf-train; lets ``torchrun --nproc-per-node N -m clfkit.train DATA`` work."""
from clfkit.cli.train import train_cmd

if __name__ == "__main__":
    train_cmd(prog_name="clf-train")
