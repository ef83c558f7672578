"""``python -m clfkit.serve`` = ``clf-serve``."""
from clfkit.serve.command import serve_cmd

serve_cmd(prog_name="clf-serve")
