"""The command line: a thin Typer layer over the library. One module per command group."""
