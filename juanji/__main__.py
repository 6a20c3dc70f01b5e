"""`python -m juanji` runs the command line."""

from juanji.cli import main_exit

main_exit()
