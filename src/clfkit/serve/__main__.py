"""``python -m clfkit.serve`` = ``clf-serve``."""
from clfkit.cli.serve import serve_cmd

serve_cmd(prog_name="clf-serve")
